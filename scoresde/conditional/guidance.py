"""Classifier and classifier-free guidance: Bayes' rule for scores.

``p_t(x | y) ∝ p_t(y | x) p_t(x)``, so ``∇_x log p_t(x | y) = ∇_x log p_t(x) + ∇_x log p_t(y | x)``
(Song et al. 2021, Eq. 14; Dhariwal & Nichol 2021 scale the second term by ``w``). The guided score
is again a ``score_fn(x, t)``: every sampler, the ODE and the likelihood take it unchanged.
Classifier-free guidance takes the classifier's gradient from one class-conditional network,
``∇ log p_t(y | x) = s(x | y) - s(x | ∅)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from scoresde.shapes import batch_labels, batch_vector

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
        labels = batch_labels(y, x.shape[0], logits.shape[1], logits.device)
        log_p = logits.log_softmax(1).gather(1, labels.unsqueeze(1)).sum()
        (grad,) = torch.autograd.grad(log_p, xg, create_graph=keep)
    return grad if keep else grad.detach()



def classifier_free_guidance(model: Callable, y: int | Tensor, scale: float = 1.0) -> ScoreFn:
    """The score ``(1 + w) s(x, t | y) - w s(x, t | ∅)``, ``w = scale`` (Ho & Salimans, 2022).

    ``model(x, t, y)`` is a class-conditional score (a :class:`~scoresde.ScoreModel` with
    ``num_classes = K > 0``, trained with ``train.label_dropout``) in which the label ``K`` is the
    null label ``∅``. The two evaluations run as one forward pass of the doubled batch, labels
    ``(y, ∅)``; ``scale = 0`` is the conditional score alone (one pass). Since
    ``s(x | y) - s(x | ∅) = ∇ log p_t(y | x)`` for exact scores, the result is
    ``s(x, t) + (1 + w) ∇ log p_t(y | x)``: classifier guidance at scale ``1 + w`` with the
    classifier implicit in the model. ``y`` is a class index or a ``(batch,)`` tensor of them.
    Raises ``ValueError`` for an unconditional model, a label outside ``[0, K)`` or a scale that
    is not a finite number.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite number; got {scale!r}")
    k = getattr(model, "num_classes", 0)
    if not k:
        raise ValueError("classifier_free_guidance needs a class-conditional model (num_classes > 0)")

    def guided(x: Tensor, t: Tensor) -> Tensor:
        labels = batch_labels(y, x.shape[0], k, x.device)
        if scale == 0:
            return model(x, t, labels)
        t = batch_vector(t, x)
        both = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, torch.full_like(labels, k)]))
        cond, uncond = both.chunk(2)
        return cond + scale * (cond - uncond)

    return guided
