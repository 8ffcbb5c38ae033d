"""``scoresde compare``: train a small score model, then run every sampler on every SDE at a few
NFE budgets and the probability-flow likelihood, and write a table and figures to a run directory.

On the embedded default (the 2-D three-component mixture of :func:`scoresde.toy_mixture`, no
download) one MLP is trained per SDE (VP, sub-VP, VE) by denoising score matching. Sample quality
is the sliced 2-Wasserstein distance to a 10,000-point exact sample (with the spread of the same
distance for exact samples of the same size, the floor no sampler can beat) and the mixture
statistics of :func:`scoresde.mixture_stats`; the likelihood is the PF-ODE NLL
``-log p_eps(x)`` of held-out points, beside the exact ``-log p_eps(x)`` of the oracle.
A ``--config`` of digits or MNIST trains its U-Net instead and reports bits/dim.

Run directory::

    report.md            the tables (samplers; likelihood) in markdown
    results.json         the same numbers
    samples_<sampler>.png   scatter plots (or image grids), one row per SDE, one column per budget
    quality_vs_nfe.png   sliced-W2 against NFE, one panel per SDE
    train_<sde>/         config, checkpoint and metrics of each trained model (a run directory)
"""

from scoresde.compare.command import add_arguments, main, options_from_args
from scoresde.compare.plots import line_style, quality_vs_nfe, sample_grid
from scoresde.compare.report import report_markdown
from scoresde.compare.runner import (
    SDE_NAMES,
    CompareOptions,
    Defaults,
    Run,
    measure,
    plan_runs,
    run_compare,
)

__all__ = [
    "SDE_NAMES",
    "CompareOptions",
    "Defaults",
    "Run",
    "add_arguments",
    "line_style",
    "main",
    "measure",
    "options_from_args",
    "plan_runs",
    "quality_vs_nfe",
    "report_markdown",
    "run_compare",
    "sample_grid",
]
