"""``inpaint``: sample the unknown entries of ``known`` (where ``mask`` is False) from
``p(x_unknown | x_known)`` with an unconditional score, by one of :data:`INPAINT_METHODS`."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import Tensor

from scoresde.conditional.masks import check_known
from scoresde.conditional.replacement import inpaint_replacement
from scoresde.conditional.smc import inpaint_smc
from scoresde.samplers.api import GRIDS, SAMPLERS
from scoresde.samplers.common import ScoreFn
from scoresde.samplers.fast import fast_choice

INPAINT_METHODS = ("replacement", "smc")
"""``"replacement"``: Song et al. 2021's imputation, any sampler that steps in ``t``
(:mod:`~scoresde.conditional.replacement`); ``"smc"``: SMCDiff's particle correction, exact as
particles and steps grow (:mod:`~scoresde.conditional.smc`)."""
NOT_STEPPING = {"ode": "it integrates with torchdiffeq in one call"}
"""Samplers whose state cannot be changed between steps, so replacement cannot act on them."""
SMC_STEPS = 200
"""``method="smc"``'s default steps, on the log-SNR grid. On a variant of the bimodal oracle
problem of ``tests/test_inpaint.py`` (a third, far component added; 64 particles, n = 300, VP)
the grid uniform in ``t`` left the mode weight at 0.47 (exact 0.24) at 200 steps and 0.27 at
1000; log-SNR and Karras at 200 gave 0.28 and 0.21 (standard error 0.025).
``benchmarks/inpaint.py`` records the log-SNR runs."""


@dataclass
class InpaintInfo:
    """What an :func:`inpaint` run did: its method, sampler, score evaluations (``nfe``, calls of
    ``score_fn``; with ``"smc"`` each on ``batch · particles`` states), grid ``ts``, ``eps``, the
    sampler's options and, for ``"smc"``, the mean effective sample size after each step."""

    method: str
    sampler: str
    nfe: int
    ts: Tensor
    eps: float
    options: dict = field(default_factory=dict)
    ess: Tensor | None = None


def inpaint(
    score_fn: ScoreFn,
    sde,
    known: Tensor,
    mask: Tensor,
    *,
    method: str = "replacement",
    sampler: str | None = None,
    steps: int | None = None,
    generator: torch.Generator | None = None,
    eps: float | None = None,
    denoise: bool = True,
    grid: str | None = None,
    particles: int = 16,
    **options,
) -> tuple[Tensor, InpaintInfo]:
    """Fill in the entries of ``known`` where ``mask`` is False; return ``(x, info)`` with
    ``x[mask] == known[mask]`` and the rest a sample of ``p(x_unknown | x_known)``.

    ``known`` is ``(batch, ...)``; ``mask`` (boolean, True = known) has the shape of one sample,
    of the batch, or broadcasts to it. ``method="replacement"`` runs ``sampler`` (default
    ``"pc"``; any of ``ss.sample``'s but ``"ode"``; ``steps``, ``grid``, ``eps`` and ``options`` as
    in ``ss.sample``) with the known entries replaced after each step by a forward-diffused
    sample of them. ``method="smc"`` runs ``particles`` particles per problem with the DDIM
    ``η = 1`` kernel (``sampler`` None or ``"ddim"``; ``steps`` default :data:`SMC_STEPS` on the
    log-SNR grid) and returns one of them per problem; ``options`` may hold ``ess_threshold``
    (0.5). With ``denoise`` the last state takes Tweedie's step. Raises ``ValueError`` naming the
    argument: an unknown ``method``, ``sampler`` or option, a sampler the method cannot use, a bad
    ``mask`` (not boolean, not broadcasting to ``known``), NaN in ``known`` where ``mask`` is True.
    """
    if method not in INPAINT_METHODS:
        raise ValueError(f"unknown method {method!r}; valid: {list(INPAINT_METHODS)}")
    known, mask = check_known(known, mask)
    if method == "smc":
        return _smc(score_fn, sde, known, mask, sampler, steps, generator, eps, denoise, grid,
                    particles, options)
    if sampler == "fast":
        choice = fast_choice(sde)
        sampler, steps = choice.sampler, choice.steps if steps is None else steps
        grid, eps = grid or choice.grid, choice.eps if eps is None else eps
        options = {**choice.options, **options}
    sampler = "pc" if sampler is None else sampler
    if sampler in NOT_STEPPING:
        raise ValueError(f"sampler {sampler!r} cannot be used with method 'replacement': "
                         f"{NOT_STEPPING[sampler]}; use one that steps in t "
                         f"({[s for s in SAMPLERS if s not in NOT_STEPPING]})")
    spec = _lookup("sampler", sampler, SAMPLERS)
    eps = sde.sampling_eps if eps is None else eps
    grid_fn = _lookup("grid", spec.grid if grid is None else grid, GRIDS)
    knobs, grid_knobs = _split(sampler, spec.fn, grid_fn, options)
    ts = grid_fn(sde, spec.steps if steps is None else steps, eps, **grid_knobs)
    ts = ts.to(known.device, known.dtype)
    x, nfe = inpaint_replacement(score_fn, sde, known, mask, spec.fn, ts, knobs, generator, denoise)
    return x, InpaintInfo(method, sampler, nfe, ts, eps, {**grid_knobs, **knobs})


def _smc(score_fn, sde, known, mask, sampler, steps, generator, eps, denoise, grid, particles,
         options):
    if sampler not in (None, "ddim"):
        raise ValueError(f"method 'smc' steps with its own kernel (DDIM with eta = 1); sampler must "
                         f"be None or 'ddim'; got {sampler!r}")
    if isinstance(particles, bool) or not isinstance(particles, int) or particles < 1:
        raise ValueError(f"particles must be an integer >= 1; got {particles!r}")
    unknown = set(options) - {"ess_threshold", "twist"}
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for method 'smc'; "
                         f"valid: ['ess_threshold', 'twist']")
    threshold, twist = options.get("ess_threshold", 0.5), bool(options.get("twist", True))
    if not 0 <= threshold <= 1:
        raise ValueError(f"ess_threshold must lie in [0, 1]; got {threshold!r}")
    eps = sde.sampling_eps if eps is None else eps
    ts = _lookup("grid", grid or "logsnr", GRIDS)(sde, SMC_STEPS if steps is None else steps, eps)
    ts = ts.to(known.device, known.dtype)
    x, nfe, ess = inpaint_smc(score_fn, sde, known, mask, ts, particles, generator, denoise,
                              threshold, twist)
    options = {"particles": particles, "ess_threshold": threshold, "twist": twist}
    return x, InpaintInfo("smc", "ddim", nfe, ts, eps, options, ess)


def _lookup(name: str, key: str, table: dict):
    if key not in table:
        raise ValueError(f"unknown {name} {key!r}; valid: {list(table)}")
    return table[key]


def _split(sampler: str, fn, grid_fn, options: dict) -> tuple[dict, dict]:
    """``options`` split into the sampler's keyword-only knobs and the grid's parameters."""
    fn_keys = {p.name for p in inspect.signature(fn).parameters.values()
               if p.kind is p.KEYWORD_ONLY and p.name not in ("generator", "callback")}
    grid_keys = set(inspect.signature(grid_fn).parameters) - {"sde", "steps", "eps"}
    unknown = set(options) - fn_keys - grid_keys
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for sampler {sampler!r}; "
                         f"valid: {sorted(fn_keys | grid_keys)}")
    return ({k: v for k, v in options.items() if k in fn_keys},
            {k: v for k, v in options.items() if k in grid_keys})
