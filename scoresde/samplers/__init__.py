"""Samplers: each a plain function ``f(score_fn, sde, x, ts, *, generator, callback, **knobs)``,
with the time grids in :mod:`scoresde.samplers.grids` and one entry point, :func:`sample`."""

from scoresde.samplers import grids
from scoresde.samplers.api import GRIDS, SAMPLERS, SampleInfo, default_eps, sample
from scoresde.samplers.budget import steps_for
from scoresde.samplers.ddim import ddim
from scoresde.samplers.heun import heun
from scoresde.samplers.langevin import annealed_langevin
from scoresde.samplers.ode import decode, encode, probability_flow
from scoresde.samplers.pc import predictor_corrector
from scoresde.samplers.sde_solvers import ancestral, euler_maruyama, reverse_diffusion

__all__ = [
    "GRIDS",
    "SAMPLERS",
    "SampleInfo",
    "ancestral",
    "annealed_langevin",
    "ddim",
    "decode",
    "default_eps",
    "encode",
    "euler_maruyama",
    "grids",
    "heun",
    "predictor_corrector",
    "probability_flow",
    "reverse_diffusion",
    "sample",
    "steps_for",
]
