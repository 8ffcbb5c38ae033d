"""Classifier guidance: Bayes' rule for scores.

``p_t(x | y) ∝ p_t(y | x) p_t(x)``, so ``∇_x log p_t(x | y) = ∇_x log p_t(x) + ∇_x log p_t(y | x)``
(Song et al. 2021, Eq. 14; Dhariwal & Nichol 2021 scale the second term by ``w``). The guided score
is again a ``score_fn(x, t)``: every sampler, the ODE and the likelihood take it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

ScoreFn = Callable[[Tensor, Tensor], Tensor]
LogitsFn = Callable[[Tensor, Tensor], Tensor]


def classifier_guidance(score_fn: ScoreFn, log_prob_y: LogitsFn, y: int | Tensor,
                        scale: float = 1.0) -> ScoreFn:
    """The score ``s(x, t) + scale · ∇_x log p_t(y | x)``.

    ``log_prob_y(x, t)`` returns class logits of shape ``(batch, classes)``, so
    ``log p_t(y | x) = log_softmax(logits)[y]``; ``y`` is a class index or a ``(batch,)`` tensor of
    them. The gradient is taken by autograd (inside ``torch.enable_grad``, so callers under
    ``torch.no_grad`` work) and detached, unless the caller differentiates through the score
    (``x.requires_grad`` with grad mode on, as the likelihood's divergence does): then the graph
    is kept (``create_graph``). ``scale = 1`` is the exact conditional score when the classifier is
    exact; ``scale > 1`` sharpens ``p_t(y | x)`` to ``p_t(y | x)^scale``. Raises ``ValueError``
    naming ``y`` for a class outside the logits' range or a batch mismatch, and naming ``scale``
    unless it is a finite number.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number; got {scale!r}")

    def guided(x: Tensor, t: Tensor) -> Tensor:
        return score_fn(x, t) + scale * class_gradient(log_prob_y, y, x, t)

    return guided


def class_gradient(log_prob_y: LogitsFn, y: int | Tensor, x: Tensor, t: Tensor) -> Tensor:
    """``∇_x log p_t(y | x)``: the gradient of ``Σ_b log_softmax(log_prob_y(x, t))[b, y_b]``."""
    keep = torch.is_grad_enabled() and x.requires_grad
    with torch.enable_grad():
        xg = x if keep else x.detach().requires_grad_(True)
        logits = log_prob_y(xg, t)
        if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"log_prob_y must return logits of shape (batch, classes) = "
                             f"({x.shape[0]}, classes); got {tuple(logits.shape)}")
        labels = class_labels(y, x.shape[0], logits.shape[1], logits.device)
        log_p = logits.log_softmax(1).gather(1, labels.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(log_p, xg, create_graph=keep)
    return grad if keep else grad.detach()


def class_labels(y: int | Tensor, batch: int, classes: int, device: torch.device) -> Tensor:
    """``y`` as a ``(batch,)`` int64 tensor; ``ValueError`` naming ``y`` unless every label lies in
    ``[0, classes)`` and its shape is a scalar or ``(batch,)``."""
    if isinstance(y, bool) or (not isinstance(y, (int, Tensor))):
        raise ValueError(f"y must be a class index or a (batch,) tensor of them; got {y!r}")
    labels = torch.as_tensor(y, device=device)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"y must hold integer class indices; got dtype {labels.dtype}")
    if labels.ndim == 0:
        labels = labels.expand(batch)
    if labels.shape != (batch,):
        raise ValueError(f"y must be a scalar or have shape (batch,) = ({batch},); "
                         f"got {tuple(labels.shape)}")
    if bool(((labels < 0) | (labels >= classes)).any()):
        raise ValueError(f"y must lie in [0, {classes}) (the classifier has {classes} classes); "
                         f"got values in [{int(labels.min())}, {int(labels.max())}]")
    return labels.long()
