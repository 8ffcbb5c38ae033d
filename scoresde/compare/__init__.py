"""``scoresde compare``: train a small score model, then run every sampler on every SDE at a few
NFE budgets and the probability-flow likelihood, and write a table and figures to a run directory.

On the embedded default (the 2-D three-component mixture of :func:`scoresde.toy_mixture`, no
download) one MLP is trained per SDE (VP, sub-VP, VE) by denoising score matching, and every
sampler runs twice from the same prior noise: with the network and with the oracle's exact
score, so that discretisation error and training error are told apart. Sample quality is the
sliced 2-Wasserstein distance to a 10,000-point exact sample (with the spread of the same
distance for exact samples of the same size, the floor no sampler can beat) and the mixture
statistics of :func:`scoresde.mixture_stats`; the likelihood is the PF-ODE NLL
``-log p_eps(x)`` of held-out points, beside the exact ``-log p_eps(x)`` of the oracle.

An image ``--config`` (or ``--checkpoint`` of a trained image run) compares the samplers on one
image model instead, judged by the feature-classifier metrics (:mod:`scoresde.compare.images`).

Run directory::

    report.md               the tables in markdown
    results.json            the same numbers, one record per run
    samples_<sampler>.png   scatter plots over the true density (rows: SDE x score), or image
                            grids, one column per budget
    quality_vs_nfe.png      toys: sliced W2 against NFE, one panel per SDE
    fd_vs_nfe.png           images: FD and confident share against NFE, the data's floor drawn
    train_<sde>/            config, checkpoint and metrics of each trained model (a run directory)

Modules: :mod:`.plan` (options, budgets, the runs), :mod:`.fit` (training),
:mod:`.nll` (likelihood), :mod:`.runner` (the toy experiment), :mod:`.images` (the image
experiment), :mod:`.report` (tables), :mod:`.plots` (figures), :mod:`.command` (the CLI).
"""

from scoresde.compare.command import add_arguments, main, options_from_args
from scoresde.compare.plan import SDE_NAMES, CompareOptions, Defaults, plan_runs
from scoresde.compare.plots import line_style, quality_vs_nfe, sample_grid
from scoresde.compare.report import report_markdown
from scoresde.compare.runner import Run, distance_to, measure, run_compare

__all__ = [
    "SDE_NAMES",
    "CompareOptions",
    "Defaults",
    "Run",
    "add_arguments",
    "distance_to",
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
