"""What ``scoresde compare`` runs: the SDEs, the NFE budgets per data kind and the list of
``(label, sampler, budget, steps, options)`` sampler runs."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from scoresde.samplers import SAMPLERS
from scoresde.samplers.budget import steps_for

SDE_NAMES = ("vp", "subvp", "ve")
ODE_TOLERANCES = (1e-2, 1e-3, 1e-5)
"""``rtol = atol`` of the adaptive ``dopri5`` runs: its NFE is chosen by the solver, not by us."""
SMALL_DIM = 16
"""Below this dimension PC uses the ``ald`` corrector: the SNR corrector is unreliable in 2-D."""
TOY_RECIPE = (
    "model.parameterization=edm", "model.sigma_data=2.0", "loss.weighting=edm",
    "loss.time_dist=lognormal", "loss.p_mean=-0.5", "loss.p_std=1.5", "train.lr_schedule=cosine",
)
"""How ``compare`` trains the embedded 2-D mixture (applied before ``--set``): EDM's
preconditioning and loss weighting with ``σ_d = 2`` (the mixture's coordinates have standard
deviations 2.7 and 2.1), log-normal noise levels centred lower than EDM's images need
(``ln σ̃ ~ N(-0.5, 1.5²)``) and a cosine learning-rate decay over the run. With 2,400 steps the
deterministic samplers at their largest NFE come within 1.5x of the exact score's sliced W2,
where the config's own ``eps`` loss at 800 steps stayed 4-5x above it (docs/samplers.md)."""

STOCHASTIC = ("ald", "em", "reverse_diffusion", "ancestral", "pc")
"""The samplers that inject noise at every step (they need many steps on images)."""


@dataclass
class CompareOptions:
    """What ``compare`` trains and measures (``None`` fields take defaults from the data kind).

    ``config``: YAML file (default: the embedded 2-D mixture); ``checkpoint``: a trained image
    run directory to judge instead of training; ``sdes``: SDE names (default: all three for 2-D
    toys, the config's own for images); ``nfe``: target budgets; ``train_steps``: optimiser
    steps per SDE; ``n_samples`` / ``n_likelihood``: points per sampler run / held-out points
    for the likelihood (0: none); ``workers``: processes for the SDEs of a toy comparison (0: one
    per SDE on a multi-core CPU; 1: all in this process).
    """

    config: str | None = None
    checkpoint: str | None = None
    overrides: tuple[str, ...] = ()
    data_dir: str | None = None
    sdes: tuple[str, ...] | None = None
    samplers: tuple[str, ...] | None = None
    nfe: tuple[int, ...] | None = None
    train_steps: int | None = None
    n_samples: int | None = None
    n_likelihood: int | None = None
    quick: bool = False
    device: str = "cpu"
    seed: int = 0
    progress: bool = True
    workers: int = 0


@dataclass
class Defaults:
    """Budgets for one data kind; ``quick`` replaces them by a seconds-long smoke run.

    ``stochastic_nfe`` (if set) replaces ``nfe`` for the :data:`STOCHASTIC` samplers, which need
    far more steps than the ODE solvers on images; ``train_steps`` ``None``: the config's own."""

    nfe: tuple[int, ...]
    train_steps: int | None
    n_samples: int
    n_likelihood: int
    tolerances: tuple[float, ...] = ODE_TOLERANCES
    likelihood_tol: float = 1e-4
    reference_size: int = 10_000
    stochastic_nfe: tuple[int, ...] | None = field(default=None)


TOY_DEFAULTS = Defaults((10, 25, 50, 100), 2400, 2000, 500, (1e-2, 1e-3, 1e-4))
IMAGE_DEFAULTS = Defaults((5, 10, 20, 50), None, 500, 0, (1e-2, 1e-3), 1e-3,
                          stochastic_nfe=(50, 100, 250))
QUICK_DEFAULTS = Defaults((10,), 30, 300, 40, (1e-2,), 1e-3, 2000)


def plan_runs(sde_name: str, dim: int, d: Defaults, samplers: tuple[str, ...] | None) -> list[tuple]:
    """``(label, sampler, budget, steps, options)`` of every applicable run."""
    names = samplers or [*SAMPLERS, "ode_rk4"]
    plan = []
    for label in names:
        if label == "ancestral" and sde_name == "subvp":
            continue  # sub-VP has no exact discrete chain
        if label == "ode":
            plan += [(label, "ode", i, None, {"rtol": tol, "atol": tol})
                     for i, tol in enumerate(d.tolerances)]
            continue
        budgets = d.stochastic_nfe if d.stochastic_nfe and label in STOCHASTIC else d.nfe
        for budget in budgets:
            steps, options = steps_for(label, budget)
            if label == "pc" and dim < SMALL_DIM:
                options = {"corrector": "ald"}
            plan.append((label, "ode" if label == "ode_rk4" else label, budget, steps, options))
    return plan


def jsonable(obj):
    """``obj`` as JSON would give it back (tuples as lists, anything else as its ``str``)."""
    return json.loads(json.dumps(obj, default=str))
