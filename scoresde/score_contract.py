"""What every ``score_fn(x, t)`` must return, checked once, on its first call.

A score function returns a tensor of exactly ``x``'s shape: one broadcast to it (say ``(batch,
1)`` for ``(batch, d)``) would run silently and be wrong, by 7–20 nats in a likelihood. Where the
caller differentiates the score in ``x`` (the divergence of the probability-flow ODE), the
output must also be connected to ``x`` by autograd: a score computed under ``torch.no_grad`` or
``.detach()``-ed has zero divergence and a likelihood off by about 10 nats, with no other sign.
Checking the first call only keeps the per-step cost at zero.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor


def check_score_output(out: object, x: Tensor, need_grad: bool = False, name: str = "score_fn") -> None:
    """``ValueError`` naming ``name`` unless ``out`` is a tensor of ``x``'s shape (and, with
    ``need_grad`` and ``x`` requiring grad, attached to ``x``'s graph)."""
    if not isinstance(out, Tensor):
        raise ValueError(f"{name} must return a tensor; got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"{name} returned shape {tuple(out.shape)} for x of shape {tuple(x.shape)}; "
                         f"it must return one score per entry of x (no broadcasting)")
    if need_grad and x.requires_grad and not out.requires_grad:
        raise ValueError(f"{name}'s output is detached from x (computed under torch.no_grad or "
                         f".detach()-ed): the likelihood differentiates the score in x")


class CheckedScore:
    """``score_fn`` whose first output is checked by :func:`check_score_output`."""

    def __init__(self, score_fn: Callable[[Tensor, Tensor], Tensor], need_grad: bool = False):
        self.score_fn, self.need_grad, self.checked = score_fn, need_grad, False

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.score_fn(x, t)
        if not self.checked:
            check_score_output(out, x, self.need_grad)
            self.checked = True
        return out
