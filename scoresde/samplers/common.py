"""Pieces every sampler shares: the grid's coefficients, Gaussian noise, the per-step report,
Tweedie's denoiser."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import torch
from torch import Tensor

from scoresde.score_contract import check_score_output
from scoresde.sde import posterior_mean
from scoresde.shapes import batch_time, check_time

ScoreFn = Callable[[Tensor, Tensor], Tensor]
Callback = Callable[[dict], None]
Generator = torch.Generator | None


def check_decreasing(ts: Tensor) -> None:
    """``ValueError`` naming ``ts`` unless it decreases strictly: sampling runs from ``T`` down."""
    steps = ts[1:] - ts[:-1]
    if ts.ndim != 1 or bool((steps >= 0).any()):
        i = int((steps >= 0).nonzero()[0]) if ts.ndim == 1 else 0
        raise ValueError(f"ts must be a strictly decreasing 1-d grid (sampling runs from t = T down "
                         f"to eps); got ts[{i}] = {float(ts.flatten()[i]):.4g} <= "
                         f"ts[{i + 1}] = {float(ts.flatten()[i + 1]):.4g}")


class CountingScore:
    """Wrap ``score_fn`` and count its calls in ``nfe``: each call is one score evaluation; the
    first output is checked (:func:`~scoresde.score_contract.check_score_output`)."""

    def __init__(self, score_fn: ScoreFn):
        self.score_fn = score_fn
        self.nfe = 0

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        self.nfe += 1
        out = self.score_fn(x, t)
        if self.nfe == 1:
            check_score_output(out, x)
        return out


class Grid:
    """A decreasing time grid ``ts`` with its coefficients computed once per run.

    ``t[i]``, ``m[i] = m(t_i)``, ``std[i] = std(t_i)``, ``ratio[i] = σ̃(t_i) = std[i] / m[i]``,
    ``drift_coef[i] = -β(t_i) / 2`` (the drift is ``drift_coef[i] x``) and ``g2[i] = g(t_i)^2``
    are Python floats evaluated in float64, as is the forward step from ``t_{i+1}`` to ``t_i`` of
    ``sde.discretize``, ``x_{t_i} = x_{t_{i+1}} + f + G z`` with ``f = chain_f[i] x`` (every SDE
    here is linear in ``x``) and ``G = chain_g[i]``. So a step does no tensor work on scalars and
    no host synchronisation; :meth:`time` is the ``(batch,)`` time the score takes; :attr:`ancestral`
    holds the ancestral step's coefficients, computed at first use (only SDEs with an exact
    discrete chain have them).
    ``steps = len(ts) - 1``. Raises ``ValueError`` if ``ts`` leaves ``[0, T]`` or does not decrease.
    """

    def __init__(self, sde, ts: Tensor, x: Tensor):
        ts64 = ts.detach().to("cpu", torch.float64)
        check_time(ts64, sde.T)
        check_decreasing(ts64)
        self.sde, self.steps, self._ts64 = sde, len(ts) - 1, ts64
        self.t = ts64.tolist()
        self.m, self.std = sde.mean_coef(ts64).tolist(), sde.std(ts64).tolist()
        self.ratio = sde.ratio(ts64).tolist()
        self.drift_coef, self.g2 = sde.drift_coef(ts64).tolist(), (sde.diffusion(ts64) ** 2).tolist()
        f, G = sde.discretize(torch.ones(self.steps, 1, dtype=torch.float64), ts64[:-1], -ts64.diff())
        self.chain_f, self.chain_g = f.flatten().tolist(), G.flatten().tolist()
        self._times = ts.to(x.device, x.dtype).unsqueeze(1).expand(-1, x.shape[0])

    @cached_property
    def ancestral(self) -> list[tuple[float, float, float]]:
        """``(a, b, c)`` of ``sde.ancestral_coefs`` for each step ``t_i -> t_{i+1}``."""
        a, b, c = self.sde.ancestral_coefs(self._ts64[:-1], self._ts64[1:])
        return list(zip(a.tolist(), b.tolist(), c.tolist(), strict=True))

    def time(self, i: int) -> Tensor:
        """``t_i`` for each sample of the batch, shape ``(batch,)``."""
        return self._times[i]

    def sigma(self, i: int) -> float:
        """EDM's noise-to-signal ratio ``σ̃_i = std(t_i) / m(t_i)`` (``sde.ratio``)."""
        return self.ratio[i]

    def denoised(self, i: int, x: Tensor, score: Tensor) -> Tensor:
        """Tweedie's ``D = (x + std_i^2 s) / m_i`` at grid point ``i`` (``sde.posterior_mean``)."""
        return posterior_mean(x, score, self.m[i], self.std[i])


def noise_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """Standard normal noise of the shape, dtype and device of ``x``, drawn from ``generator``."""
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def check_finite(sampler: str, i: int, t: Tensor, x: Tensor) -> None:
    """Raise ``FloatingPointError`` naming the sampler, step ``i`` and ``t`` if ``x`` is not finite."""
    if not bool(torch.isfinite(x).all()):
        raise FloatingPointError(
            f"sampler {sampler!r} produced a non-finite sample at step {i}, t = {float(t):.6g}"
        )


CHECK_EVERY = 16
"""Steps between two host reads of :class:`Reporter`'s non-finite flag on an accelerator (the last
step is always read; on the CPU every step is, since reading it costs no synchronisation)."""


class Reporter:
    """The end of each step of one run of ``sampler`` whose last step is ``last``.

    ``report(i, t, x)`` hands ``{"i", "t", "x"}`` to ``callback`` and folds ``all(isfinite(x))``
    into a flag that stays on the device; :meth:`watch` folds in an intermediate state. The flag
    is read on the host every ``every`` steps and at step ``last``: by default every step on the
    CPU (a read, no synchronisation, so a non-finite state never reaches the next score call) and
    every :data:`CHECK_EVERY` steps elsewhere (one synchronisation per read). A non-finite state
    raises ``FloatingPointError`` naming the sampler and the step, or the steps with their ``t``
    between which it appeared (whose states the callback may have seen).
    """

    def __init__(self, sampler: str, last: int, callback: Callback | None = None,
                 every: int | None = None):
        self.sampler, self.last, self.callback, self.every = sampler, last, callback, every
        self._finite: Tensor | None = None
        self._first: tuple[int, Tensor] | None = None

    def watch(self, i: int, t: Tensor, x: Tensor) -> None:
        """Fold ``all(isfinite(x))`` of a state at step ``i``, time ``t``, into the flag; read it at
        once only if it is read every step."""
        finite = torch.isfinite(x).all()
        self._finite = finite if self._finite is None else self._finite & finite
        self._first = self._first or (i, t)
        if self.every is None:
            self.every = 1 if x.device.type == "cpu" else CHECK_EVERY
        if self.every == 1:
            self._check(i, t)

    def __call__(self, i: int, t: Tensor, x: Tensor) -> None:
        """End of step ``i`` at time ``t``: :meth:`watch` ``x``, read the flag if it is due, then
        hand the step to the callback."""
        self.watch(i, t, x)
        if self._finite is not None and (i >= self.last or (i + 1) % self.every == 0):
            self._check(i, t)
        if self.callback is not None:
            self.callback({"i": i, "t": t, "x": x})

    def _check(self, i: int, t: Tensor) -> None:
        finite, (first, t_first) = self._finite, self._first
        self._finite = self._first = None
        if not bool(finite):
            where = f"at step {i}" if first == i else (
                f"between step {first}, t = {float(t_first):.6g} and step {i}")
            raise FloatingPointError(
                f"sampler {self.sampler!r} produced a non-finite sample {where}, t = {float(t):.6g}"
            )


def tweedie(score_fn: ScoreFn, sde, x: Tensor, t: float | Tensor) -> Tensor:
    """Tweedie's denoiser ``E[x_0 | x_t]`` with the score ``score_fn(x_t, t)`` (``sde.denoise``)."""
    t = batch_time(t, x, sde.T)
    return sde.denoise(x, t, score_fn(x, t))
