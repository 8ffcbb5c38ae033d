"""Discrete data as a continuous density: uniform dequantisation and bits per dimension.

Integer data ``x ∈ {0, …, L-1}^D`` (``L = num_levels``) is dequantised to
``u = (x + U) / L`` with ``U ~ Uniform[0, 1)^D``, then mapped affinely to the model's range
``y = a u + b`` for ``data_range = (lo, hi)``: ``a = hi - lo``, ``b = lo``. A continuous density
``p_y`` on ``y`` gives ``p_u(u) = p_y(y) a^D``, and each bin of ``u`` has volume ``L^{-D}``, so
(by Jensen, a bound in expectation over ``U``)

    -log2 P(x) / D  <=  bpd = (-log p_y(y) - D ln a) / (D ln 2) + log2(L).

For ``L = 256`` and ``y ∈ [-1, 1]`` (``a = 2``) the offset is ``+ 7``; for ``[0, 1]``, ``+ 8``.
This module is the one place where that arithmetic lives, and :func:`dequantized_bits_per_dim`
runs it over a data set for any estimate of ``-log p_y`` (``ss.bits_per_dim`` passes the ODE
likelihood or the ELBO).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from scoresde.shapes import flatten_batch


def check_levels(x: Tensor, num_levels: int, name: str = "data") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``x`` holds integers in ``[0, num_levels)``."""
    if not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2; got {num_levels!r}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (batch, ...); got {tuple(x.shape)}")
    if x.is_floating_point() or x.is_complex():
        if not bool(torch.isfinite(x).all()) or not bool((x == x.round()).all()):
            raise ValueError(f"{name} must hold integer values in [0, {num_levels})")
    elif x.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer values in [0, {num_levels}); got bool")
    lo, hi = x.min().item(), x.max().item()
    if lo < 0 or hi >= num_levels:
        raise ValueError(f"{name} must hold integer values in [0, {num_levels}); got [{lo}, {hi}]")


def check_range(data_range: tuple[float, float]) -> tuple[float, float]:
    """Return ``data_range`` as floats ``(lo, hi)``; ``ValueError`` unless ``lo < hi``, finite."""
    try:
        lo, hi = (float(v) for v in data_range)
    except (TypeError, ValueError) as err:
        raise ValueError(f"data_range must be a pair (lo, hi); got {data_range!r}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be finite with lo < hi; got {data_range!r}")
    return lo, hi


def log_jacobian(dim: int, data_range: tuple[float, float] = (-1.0, 1.0)) -> float:
    """``log |det ∂y/∂u| = D ln a`` for ``y = a u + b``, ``a = hi - lo``: one sample's term."""
    lo, hi = check_range(data_range)
    return dim * math.log(hi - lo)


def dequantize(
    x: Tensor,
    num_levels: int = 256,
    data_range: tuple[float, float] = (-1.0, 1.0),
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> tuple[Tensor, Tensor]:
    """Uniformly dequantise integer data and map it to the model's range.

    ``u = (x + U) / L`` with ``U ~ Uniform[0, 1)``, ``y = (hi - lo) u + lo``. Returns ``y``
    (same shape and device as ``x``, floating ``dtype``, default torch's default dtype or
    ``x``'s own floating dtype) and the per-sample log-Jacobian ``D ln(hi - lo)``, shape
    ``(batch,)``, to be subtracted from ``-log p_y(y)`` (see :func:`nats_to_bits_per_dim`).
    """
    check_levels(x, num_levels, "x")
    lo, hi = check_range(data_range)
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=dtype)
    y = (hi - lo) * (x.to(dtype) + noise) / num_levels + lo
    dim = flatten_batch(x).shape[1]
    log_det = torch.full((x.shape[0],), log_jacobian(dim, (lo, hi)), dtype=dtype, device=x.device)
    return y, log_det


def nats_to_bits_per_dim(
    nll_nats: Tensor | float,
    dim: int,
    *,
    num_levels: int | None = 256,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> Tensor:
    """Convert ``-log p_y(y)`` (nats per sample) of dequantised data to bits per dimension.

    ``bpd = (-log p_y(y) - D ln a) / (D ln 2) + log2(L)``, ``a = hi - lo``, ``L = num_levels``.
    With ``num_levels=None`` the data are taken as continuous: ``bpd = -log p(y) / (D ln 2)``
    with no offset and no change of range.
    """
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer; got {dim!r}")
    nll = torch.as_tensor(nll_nats)
    if num_levels is None:
        return nll / (dim * math.log(2))
    if not isinstance(num_levels, int) or num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2 or None; got {num_levels!r}")
    return (nll - log_jacobian(dim, data_range)) / (dim * math.log(2)) + math.log2(num_levels)


@dataclass
class BitsPerDim:
    """Bits per dimension of each sample (averaged over dequantisations), their mean and SE.

    ``stderr = std(bpd) / sqrt(n)`` over the ``n`` samples; ``nfe`` sums all score evaluations.
    """

    bpd: Tensor
    mean: float
    stderr: float
    nfe: int


def dequantized_bits_per_dim(
    nll_fn: Callable[[Tensor, torch.Generator | None], tuple[Tensor, int]],
    data: Tensor,
    *,
    num_levels: int = 256,
    data_range: tuple[float, float] = (-1.0, 1.0),
    n_dequant: int = 1,
    generator: torch.Generator | None = None,
    batch_size: int = 256,
    dtype: torch.dtype | None = None,
    progress: bool = False,
) -> BitsPerDim:
    """Bits/dim of integer ``data`` in ``{0, …, L-1}^D`` under the density behind ``nll_fn``.

    Each batch of ``batch_size`` samples is dequantised ``n_dequant`` times (:func:`dequantize`),
    ``nll_fn(y, generator) -> (-log p_y(y) in nats per sample, score evaluations)`` is turned into
    bits/dim by :func:`nats_to_bits_per_dim` and the draws are averaged per sample.
    """
    check_levels(data, num_levels, "data")
    if not isinstance(n_dequant, int) or n_dequant < 1:
        raise ValueError(f"n_dequant must be a positive integer; got {n_dequant!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    dim = flatten_batch(data).shape[1]
    chunks, nfe = [], 0
    batches = data.split(batch_size)
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="bits/dim")
    for batch in batches:
        total = 0.0
        for _ in range(n_dequant):
            y, _ = dequantize(batch, num_levels, data_range, generator=generator, dtype=dtype)
            nll, n = nll_fn(y, generator)
            total = total + nats_to_bits_per_dim(nll, dim, num_levels=num_levels, data_range=data_range)
            nfe += n
        chunks.append(total / n_dequant)
    bpd = torch.cat(chunks)
    stderr = bpd.std().item() / math.sqrt(len(bpd)) if len(bpd) > 1 else float("nan")
    return BitsPerDim(bpd=bpd, mean=bpd.mean().item(), stderr=stderr, nfe=nfe)
