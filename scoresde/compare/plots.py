"""The figures of ``scoresde compare``: sample grids per sampler and quality against NFE."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from scoresde.compare.plan import ODE_TOLERANCES
from scoresde.compare.report import line_label
from scoresde.plotting import pyplot, show_images

SCORES = ("trained", "oracle")
SCORE_NAMES = {"trained": "trained", "oracle": "exact score"}
TOY_VIEW = ((-6.0, 6.0), (-5.0, 6.0))
"""The ``(x, y)`` limits of the 2-D scatter plots (the embedded mixture's support)."""


def line_style(i: int) -> dict:
    """The ``i``-th sampler's colour and marker, the same in every panel (tab20 has 20 colours)."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](2 * i % 20 + i // 10), "marker": "osD^v"[i % 5], "ms": 4}


def sample_grid(path: Path, label: str, samples: dict, sdes, image: bool,
                density: Callable[[Tensor], Tensor] | None = None,
                tolerances: tuple[float, ...] = ODE_TOLERANCES) -> None:
    """One row per SDE and score (trained; exact, when the runs have it), one column per budget:
    a scatter plot over the contours of ``density`` (a log-density of 2-D points) or a 4x4 image
    grid. ``samples`` maps ``(label, sde, budget, score)`` to a sample; the ``ode`` budgets index
    ``tolerances``."""
    plt = pyplot()
    budgets = sorted({key[2] for key in samples if key[0] == label})
    rows = [(s, score) for s in sdes for score in SCORES
            if any(key[0] == label and key[1:4:2] == (s, score) for key in samples)]
    fig, axes = plt.subplots(len(rows), len(budgets), squeeze=False,
                             figsize=(2.6 * len(budgets), 2.6 * len(rows)))
    contours = _contours(density) if density is not None and not image else None
    for (sde_name, score), row in zip(rows, axes, strict=True):
        for budget, ax in zip(budgets, row, strict=True):
            x = samples.get((label, sde_name, budget, score))
            ax.set_xticks([]), ax.set_yticks([])
            if x is None:
                ax.set_axis_off()
                continue
            if image:
                show_images(ax, x, 4)
            else:
                _scatter(ax, x, contours)
            ax.set_title(f"{sde_name}, {SCORE_NAMES[score]}, "
                         f"{budget_name(label, budget, tolerances)}", fontsize=8)
    fig.suptitle(f"{line_label(label)}: samples" + ("" if image else " over the true density"))
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _contours(density: Callable[[Tensor], Tensor], n: int = 160) -> tuple[Tensor, ...]:
    """``(X, Y, log p)`` on an ``n x n`` grid over :data:`TOY_VIEW`."""
    (x0, x1), (y0, y1) = TOY_VIEW
    xs, ys = torch.linspace(x0, x1, n), torch.linspace(y0, y1, n)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    logp = density(torch.stack([X.flatten(), Y.flatten()], 1).double()).reshape(n, n)
    return X, Y, logp


def _scatter(ax, x: Tensor, contours: tuple[Tensor, ...] | None) -> None:
    """Points over the density's contours at ``log p = max - 1, ..., max - 9`` (grey lines)."""
    if contours is not None:
        X, Y, logp = contours
        top = logp.max().item()
        ax.contour(X, Y, logp, levels=[top - k for k in (9, 7, 5, 3, 1)], colors="0.45",
                   linewidths=0.6, linestyles="solid")
    ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
    ax.set_xlim(*TOY_VIEW[0]), ax.set_ylim(*TOY_VIEW[1])


def budget_name(label: str, budget: int, tolerances: tuple[float, ...] = ODE_TOLERANCES) -> str:
    """A column title: the ODE's tolerance (``budget`` indexes ``tolerances``), else the NFE."""
    return f"tol {tolerances[budget]:g}" if label == "ode" else f"NFE≈{budget}"


def quality_vs_nfe(path: Path, runs: list[dict], floor: list[float], sdes) -> None:
    """Sliced W2 against the measured NFE (log axis), one line per sampler (solid: trained
    network; dashed: the exact score on the same noise), one panel per SDE; the grey band is
    the spread of exact samples of the same size (the floor)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sdes), figsize=(5 * len(sdes), 4), squeeze=False, sharey=True)
    labels = list(dict.fromkeys(r["sampler"] for r in runs))
    for ax, sde_name in zip(axes[0], sdes, strict=True):
        for i, label in enumerate(labels):
            for score, ls in zip(SCORES, ("-", "--"), strict=True):
                pts = sorted((r["nfe"], r["sliced_w2"]) for r in runs if r["sampler"] == label
                             and r["sde"] == sde_name and r["score"] == score)
                if pts:
                    ax.plot(*zip(*pts, strict=True), ls=ls, **line_style(i),
                            label=line_label(label) if score == "trained" else None)
        ax.axhspan(min(floor), max(floor), color="0.85", label="exact sample")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel("NFE (score evaluations)"), ax.set_title(sde_name)
    axes[0, 0].set_ylabel("sliced W2 to the truth (dashed: exact score)")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def fd_vs_nfe(path: Path, result: dict) -> None:
    """FD and confident share against the measured NFE (log axis), one line per sampler, the
    data's floor as a dashed line."""
    plt = pyplot()
    fig, (ax_fd, ax_conf) = plt.subplots(1, 2, figsize=(11, 4))
    runs, floor = result["runs"], result["floor"]
    for i, label in enumerate(dict.fromkeys(r["sampler"] for r in runs)):
        pts = sorted((r["nfe"], r["fd"], r["confident"]) for r in runs if r["sampler"] == label)
        nfe, fd, conf = zip(*pts, strict=True)
        ax_fd.plot(nfe, fd, **line_style(i), label=line_label(label))
        ax_conf.plot(nfe, [100 * c for c in conf], **line_style(i))
    ax_fd.axhline(floor["fd"], color="0.3", ls="--", label="data floor (real images)")
    ax_conf.axhline(100 * floor["confident"], color="0.3", ls="--")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    for ax, name in ((ax_fd, "Fréchet distance (features)"), (ax_conf, "confident share (%)")):
        ax.set_xscale("log"), ax.set_xlabel("NFE (score evaluations)"), ax.set_ylabel(name)
        ax.xaxis.set_major_formatter(ScalarFormatter()), ax.xaxis.set_minor_formatter(NullFormatter())
    ax_fd.set_yscale("log")
    ax_fd.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{result['config']}: {result['n']} samples per run, same prior noise")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def image_samples(path: Path, label: str, samples: dict,
                  tolerances: tuple[float, ...] = ODE_TOLERANCES) -> None:
    """One 8 x 8 image grid per budget of ``label`` (``samples`` maps ``(label, budget)`` to
    images; the same prior noise in every panel)."""
    plt = pyplot()
    budgets = sorted(b for (lab, b) in samples if lab == label)
    fig, axes = plt.subplots(1, len(budgets), figsize=(2.8 * len(budgets), 3.1), squeeze=False)
    for budget, ax in zip(budgets, axes[0], strict=True):
        x = samples[(label, budget)]
        show_images(ax, x, math.isqrt(len(x)))
        ax.set_title(budget_name(label, budget, tolerances), fontsize=9)
    fig.suptitle(f"{line_label(label)}: the same prior noise at every budget", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
