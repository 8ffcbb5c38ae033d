"""Predictor–corrector sampling (Song et al. 2021, Algorithms 2–3)."""

from __future__ import annotations

import torch
from torch import Tensor

from scoresde.samplers.common import Callback, Grid, Reporter, ScoreFn
from scoresde.samplers.langevin import ald_corrector, langevin_corrector
from scoresde.samplers.sde_solvers import ancestral_step, em_step, reverse_diffusion_step

PREDICTORS = {"reverse_diffusion": reverse_diffusion_step, "em": em_step, "ancestral": ancestral_step}
CORRECTORS = {"langevin": langevin_corrector, "ald": ald_corrector}


def default_snr(sde) -> float:
    """Corrector signal-to-noise ratio ``sde.corrector_snr``: 0.075 for VE, 0.16 for VP and sub-VP."""
    return sde.corrector_snr


def predictor_corrector(
    score_fn: ScoreFn,
    sde,
    x: Tensor,
    ts: Tensor,
    *,
    predictor: str | None = "reverse_diffusion",
    corrector: str | None = "langevin",
    snr: float | None = None,
    n_corrector: int = 1,
    norms: str = "batch",
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
) -> Tensor:
    """For ``i = 0..N-1``: ``n_corrector`` corrector steps at ``t_i``, then one predictor step
    from ``t_i`` to ``t_{i+1}``.

    ``predictor`` in {"reverse_diffusion", "em", "ancestral", None}; ``corrector`` in
    {"langevin", "ald", None} (see :mod:`scoresde.samplers.langevin`); ``snr`` defaults to
    :func:`default_snr` (0.16 VP / sub-VP, 0.075 VE); ``norms`` ("sample" or "batch") sets how the
    Langevin corrector's step is computed (see :func:`langevin_corrector`).
    ``N (1 + n_corrector)`` score evaluations.
    """
    predict = _choose("predictor", predictor, PREDICTORS)
    correct = _choose("corrector", corrector, CORRECTORS)
    if predict is None and correct is None:
        raise ValueError("predictor and corrector cannot both be None: nothing would move x")
    if isinstance(n_corrector, bool) or not isinstance(n_corrector, int) or n_corrector < 0:
        raise ValueError(f"n_corrector must be an integer >= 0; got {n_corrector!r}")
    snr = default_snr(sde) if snr is None else snr
    if not snr > 0:
        raise ValueError(f"snr must be > 0; got {snr!r}")
    knobs = {"snr": snr, "generator": generator}
    if correct is langevin_corrector:
        knobs["norms"] = norms
    grid = Grid(sde, ts, x)
    report = Reporter("pc", grid.steps - 1, callback)
    for i in range(grid.steps):
        for _ in range(n_corrector if correct is not None else 0):
            x = correct(score_fn, grid, i, x, **knobs)
            report.watch(i, ts[i], x)
        if predict is not None:
            x = predict(score_fn, grid, i, x, generator)
        report(i, ts[i + 1], x)
    return x


def _choose(name: str, key: str | None, table: dict):
    if key is None:
        return None
    if key not in table:
        raise ValueError(f"unknown {name} {key!r}; valid: {[*table, None]}")
    return table[key]
