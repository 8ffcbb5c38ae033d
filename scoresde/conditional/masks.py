"""The known part of an inpainting problem: a boolean mask over the data and the values it marks."""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.shapes import require_finite


def check_known(known: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Validate ``known`` ``(batch, ...)`` and ``mask`` (True = known); return ``known`` with the
    unknown entries set to zero and ``mask`` broadcast to ``known.shape``.

    ``mask`` has the shape of one sample (``known.shape[1:]``), of the whole batch, or any shape
    that broadcasts to ``known.shape`` (e.g. ``(1, h, w)`` for every channel of an image). Raises
    ``ValueError`` naming the argument: ``known`` not a floating-point ``(batch, ...)`` tensor,
    ``mask`` not boolean or not broadcasting to ``known``, NaN or inf in ``known`` where ``mask`` is
    True (values where it is False are ignored, NaN included).
    """
    if not isinstance(known, Tensor) or not known.is_floating_point() or known.ndim < 2:
        raise ValueError("known must be a floating-point tensor of shape (batch, ...); got "
                         f"{type(known).__name__} {getattr(known, 'dtype', '')} "
                         f"{tuple(getattr(known, 'shape', ()))}")
    if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
        raise ValueError(f"mask must be a boolean tensor (True = known); got "
                         f"{type(mask).__name__} {getattr(mask, 'dtype', '')}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, known.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != known.shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to known of shape "
                         f"{tuple(known.shape)} (give one sample's shape {tuple(known.shape[1:])} "
                         f"or the batch's)")
    mask = mask.to(known.device).expand(known.shape)
    require_finite(known[mask], "known (where mask is True)")
    return torch.where(mask, known, torch.zeros((), dtype=known.dtype, device=known.device)), mask


def diffuse(sde, known: Tensor, t: Tensor, generator: torch.Generator | None) -> Tensor:
    """A sample of the forward marginal ``x_t = m(t) x_known + std(t) z`` at one time ``t``."""
    mean, std = sde.marginal(known, t)
    z = torch.randn(known.shape, generator=generator, device=known.device, dtype=known.dtype)
    return mean + std * z


MASKS = ("lower-half", "upper-half", "left-half", "right-half", "random:P")
"""The named masks of :func:`named_mask` (``P``: the share of entries known, in ``(0, 1)``)."""


def named_mask(spec: str, shape: tuple[int, ...], generator: torch.Generator | None = None) -> Tensor:
    """The boolean mask (True = known) ``spec`` names, for one sample of ``shape`` ``(c, h, w)``.

    ``"lower-half"`` keeps the upper half and asks for the lower one (rows ``h // 2`` on unknown);
    ``"upper-half"``, ``"left-half"``, ``"right-half"`` likewise name the half to fill in;
    ``"random:P"`` keeps each pixel (all channels together) with probability ``P``, drawn from
    ``generator``. Raises ``ValueError`` naming ``mask`` for another name, a ``P`` outside
    ``(0, 1)`` or a shape that is not ``(c, h, w)``.
    """
    if len(shape) != 3:
        raise ValueError(f"mask {spec!r} needs images of shape (c, h, w); got {tuple(shape)}")
    _, h, w = shape
    rows, cols = torch.arange(h).view(h, 1), torch.arange(w).view(1, w)
    halves = {"lower-half": rows < h // 2, "upper-half": rows >= h // 2,
              "left-half": cols >= w // 2, "right-half": cols < w // 2}
    if spec in halves:
        return halves[spec].expand(h, w).unsqueeze(0)
    name, _, share = spec.partition(":")
    try:
        p = float(share)
    except ValueError:
        p = None
    if name != "random" or p is None or not 0 < p < 1:
        raise ValueError(f"mask must be one of {list(MASKS)} with 0 < P < 1; got {spec!r}")
    return torch.rand((1, h, w), generator=generator) < p
