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
