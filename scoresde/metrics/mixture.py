"""Sample-quality statistics: mixture goodness-of-fit against the oracle, sliced Wasserstein.

The mixture statistics are sharper than a distance on mixtures (see the design notes): the
soft count of each component ``n_k = Σ_i r_k(x_i)`` has expectation ``n w_k`` exactly under
``p_0``, and the responsibility-weighted mean and variance of each component estimate ``μ_k``
and ``diag Σ_k``, so each can be turned into a χ² or z statistic from its sampling error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scoresde.analytic import GaussianMixture
from scoresde.shapes import flatten_batch


@dataclass
class MixtureStats:
    """Goodness of fit of a sample to a Gaussian mixture.

    ``chi2`` (``dof = K - 1``) compares the soft component counts with ``n w_k``; ``mean_z`` and
    ``std_z`` (``(K, d)``) are z-scores of each component's weighted mean and variance along each
    axis, ``(mean - μ) / sqrt(Σ_dd / n_k)`` and ``(var - Σ_dd) / (Σ_dd sqrt(2 / n_k))``.
    """

    chi2: float
    dof: int
    weights: Tensor
    mean_z: Tensor
    std_z: Tensor

    @property
    def max_abs_z(self) -> float:
        return float(torch.cat([self.mean_z.abs().flatten(), self.std_z.abs().flatten()]).max())


def mixture_stats(gm: GaussianMixture, x: Tensor) -> MixtureStats:
    """Compare a sample ``x`` (``(n, ...)``) with the mixture ``gm`` (see :class:`MixtureStats`)."""
    x = flatten_batch(x).to(torch.float64).cpu()
    n = x.shape[0]
    resp = gm.responsibilities(x)
    counts = resp.sum(0)
    expected = n * gm.weights
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    mean = torch.einsum("nk,nd->kd", resp, x) / counts[:, None]
    var = torch.einsum("nk,nkd->kd", resp, (x[:, None, :] - mean) ** 2) / counts[:, None]
    true_var = torch.diagonal(gm.covariances(), dim1=1, dim2=2)
    mean_z = (mean - gm.means) / (true_var / counts[:, None]).sqrt()
    std_z = (var - true_var) / (true_var * (2 / counts[:, None]).sqrt())
    return MixtureStats(chi2, gm.n_components - 1, counts / n, mean_z, std_z)


class SlicedWasserstein:
    """Sliced 2-Wasserstein distance to a fixed ``reference`` over fixed random unit directions θ:
    ``SW2(x) = sqrt(E_θ W_2^2(θᵀx, θᵀy))``, each 1-D ``W_2`` comparing quantiles at ``n`` evenly
    spaced levels ``(k + ½) / n``, ``n = min(len(x), len(y))``.

    The directions are drawn once (from ``generator``) and the reference's projections are sorted
    once, so scoring many samples against one large reference costs one projection each.
    """

    def __init__(self, reference: Tensor, n_projections: int = 256,
                 generator: torch.Generator | None = None):
        y = flatten_batch(reference).to(torch.float64).cpu()
        theta = torch.randn(y.shape[1], n_projections, generator=generator, dtype=torch.float64)
        self.theta = theta / theta.norm(dim=0, keepdim=True)
        self.sorted_ref = (y @ self.theta).sort(0).values

    def __call__(self, x: Tensor) -> float:
        x = flatten_batch(x).to(torch.float64).cpu()
        if x.shape[1] != self.theta.shape[0]:
            raise ValueError(f"x and the reference must have the same dimension; got {x.shape[1]} "
                             f"and {self.theta.shape[0]}")
        n = min(x.shape[0], self.sorted_ref.shape[0])
        levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        qx = _quantiles((x @ self.theta).sort(0).values, levels)
        return float(((qx - _quantiles(self.sorted_ref, levels)) ** 2).mean().sqrt())


def sliced_wasserstein(
    x: Tensor, y: Tensor, n_projections: int = 256, generator: torch.Generator | None = None
) -> float:
    """Sliced 2-Wasserstein distance ``sqrt(E_θ W_2^2(θᵀx, θᵀy))`` over random unit directions θ
    (:class:`SlicedWasserstein` with ``y`` as the reference).

    Each 1-D distance compares quantiles at ``min(len(x), len(y))`` evenly spaced levels.
    """
    if flatten_batch(x).shape[1] != flatten_batch(y).shape[1]:
        raise ValueError(f"x and y must have the same dimension; got {flatten_batch(x).shape[1]} "
                         f"and {flatten_batch(y).shape[1]}")
    return SlicedWasserstein(y, n_projections, generator)(x)


def _quantiles(sorted_proj: Tensor, levels: Tensor) -> Tensor:
    """Linear interpolation of sorted samples (column-wise) at probability ``levels``."""
    m = sorted_proj.shape[0]
    pos = levels * m - 0.5
    lo = pos.floor().clamp(0, m - 1).long()
    hi = (lo + 1).clamp(max=m - 1)
    frac = (pos - lo).clamp(0, 1)[:, None]
    return sorted_proj[lo] * (1 - frac) + sorted_proj[hi] * frac
