"""Inpainting by replacement (Song et al. 2021, Appendix I.2, "imputation").

Run any sampler that steps in ``t`` on the whole state; after each step, at the step's time
``t``, replace the known entries by a fresh forward-diffused sample of the known values,
``x_t[mask] = m(t) x_known + std(t) z``, through the samplers' per-step ``callback``. The start
``x_T`` is replaced too, and the output's known entries are the known values exactly.

It is biased: the unknown entries follow ``p_t(x_u | x_k,t)`` given one random noisy draw of the
known values at each ``t``, not ``p_t(x_u | x_k,0)``; at high noise that draw says little about
``x_k,0``, and the modes of ``x_u`` are chosen there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.conditional.masks import diffuse
from scoresde.samplers.common import Callback, CountingScore, ScoreFn, tweedie


def replace_known(sde, known: Tensor, mask: Tensor, generator: torch.Generator | None) -> Callback:
    """A sampler callback that overwrites, in place, the known entries of the step's state
    ``x`` at its time ``t`` by a forward-diffused sample of ``known``."""

    def callback(step: dict) -> None:
        x = step["x"]
        x.copy_(torch.where(mask, diffuse(sde, known, step["t"], generator), x))

    return callback


def inpaint_replacement(score_fn: ScoreFn, sde, known: Tensor, mask: Tensor, sampler_fn,
                        ts: Tensor, knobs: dict, generator: torch.Generator | None,
                        denoise: bool) -> tuple[Tensor, int]:
    """Run ``sampler_fn`` (a stepping sampler of :mod:`scoresde.samplers`) over ``ts`` from the
    prior with the known entries replaced after every step; ``(x, nfe)``."""
    counted = CountingScore(score_fn)
    x = sde.prior_sample(known.shape, generator=generator, device=known.device, dtype=known.dtype)
    x = torch.where(mask, diffuse(sde, known, ts[0], generator), x)
    replace = replace_known(sde, known, mask, generator)
    x = sampler_fn(counted, sde, x, ts, generator=generator, callback=replace, **knobs)
    if denoise:
        x = tweedie(counted, sde, x, ts[-1])
    return torch.where(mask, known, x), counted.nfe
