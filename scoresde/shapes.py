"""Shape helpers: the one place where per-sample coefficients meet tensors of any rank."""

from __future__ import annotations

import torch
from torch import Tensor


def append_dims(coef: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dimensions to ``coef`` until it has ``ndim`` dimensions.

    A per-sample coefficient of shape ``(batch,)`` becomes ``(batch, 1, ..., 1)`` and so
    broadcasts against ``x`` of shape ``(batch, ...)`` whatever its rank.
    """
    missing = ndim - coef.ndim
    if missing < 0:
        raise ValueError(f"coef has {coef.ndim} dims, more than the target {ndim}")
    return coef.reshape(*coef.shape, *([1] * missing))


def batch_vector(v: float | Tensor, x: Tensor, name: str = "t") -> Tensor:
    """Return ``v`` as a tensor of shape ``(batch,)`` on the device and dtype of ``x``.

    A Python float or a 0-d tensor is broadcast to the batch of ``x``. Raises ``ValueError``
    naming ``name`` if the batch of ``v`` does not match ``x``, and if ``x`` is not floating point
    (its dtype would silently round ``v``: an integer ``x`` turned ``t = 0.5`` into 0).
    """
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor; got {x.dtype} (convert integer data, "
                         f"e.g. with scoresde.data.to_model_range)")
    v = torch.as_tensor(v, dtype=x.dtype, device=x.device)
    if v.ndim == 0:
        v = v.expand(x.shape[0])
    if v.ndim != 1 or v.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} must be a scalar or have shape (batch,) = ({x.shape[0]},); got {tuple(v.shape)}"
        )
    return v


def batch_time(t: float | Tensor, x: Tensor, T: float = 1.0) -> Tensor:
    """:func:`batch_vector` for a time: also raises ``ValueError`` if ``t`` leaves ``[0, T]``."""
    t = batch_vector(t, x)
    check_time(t, T)
    return t


def check_time(t: Tensor, T: float = 1.0) -> None:
    """Raise ``ValueError`` naming ``t`` unless every entry lies in ``[0, T]``."""
    if not bool(((t >= 0) & (t <= T)).all()):
        raise ValueError(f"t must lie in [0, {T}]; got values in [{t.min():.4g}, {t.max():.4g}]")


def flatten_batch(x: Tensor) -> Tensor:
    """View ``(batch, ...)`` as ``(batch, D)``."""
    return x.reshape(x.shape[0], -1)


def require_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` if ``x`` holds a NaN or an infinity."""
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or inf")



def batch_labels(y: int | Tensor | None, batch: int, classes: int, device: torch.device | str | None = None,
                 *, null: bool = False, name: str = "y") -> Tensor:
    """Class labels as a ``(batch,)`` int64 tensor on ``device``.

    An integer or a 0-d tensor is broadcast to the batch. Labels lie in ``[0, classes)``; with
    ``null``, ``classes`` itself is allowed too (the null label ``∅``, "no class") and ``None``
    means it for every sample. Raises ``ValueError`` naming ``name`` for anything else: a float,
    bool or other non-integer, a shape other than ``()`` or ``(batch,)``, a label out of range.
    """
    if y is None and null:
        return torch.full((batch,), classes, dtype=torch.long, device=device)
    if isinstance(y, bool) or not isinstance(y, (int, Tensor)):
        raise ValueError(f"{name} must be a class index or a (batch,) tensor of them; got {y!r}")
    labels = torch.as_tensor(y, device=device)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class indices; got dtype {labels.dtype}")
    if labels.ndim == 0:
        labels = labels.expand(batch)
    if labels.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape (batch,) = ({batch},); "
                         f"got {tuple(labels.shape)}")
    high = classes + 1 if null else classes
    if bool(((labels < 0) | (labels >= high)).any()):
        what = f"{classes} classes, {classes} the null label" if null else f"{classes} classes"
        raise ValueError(f"{name} must lie in [0, {high}) ({what}); "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")
    return labels.long()
