"""The figures of ``scoresde compare``: sample grids per sampler and quality against NFE."""

from __future__ import annotations

from pathlib import Path

from scoresde.compare.plan import ODE_TOLERANCES
from scoresde.compare.report import line_label
from scoresde.plotting import pyplot, show_images


def line_style(i: int) -> dict:
    """The ``i``-th sampler's colour and marker, the same in every panel (tab20 has 20 colours)."""
    from matplotlib import colormaps

    return {"color": colormaps["tab20"](2 * i % 20 + i // 10), "marker": "osD^v"[i % 5], "ms": 4}


def sample_grid(path: Path, label: str, samples: dict, sdes, image: bool) -> None:
    """One row per SDE, one column per budget: a scatter plot (2-D) or a 4x4 image grid."""
    plt = pyplot()
    budgets = sorted({b for (lab, _, b) in samples if lab == label})
    fig, axes = plt.subplots(len(sdes), len(budgets), figsize=(2.6 * len(budgets), 2.6 * len(sdes)),
                             squeeze=False)
    for row, sde_name in enumerate(sdes):
        for col, budget in enumerate(budgets):
            ax, x = axes[row, col], samples.get((label, sde_name, budget))
            ax.set_xticks([]), ax.set_yticks([])
            if x is None:
                ax.set_axis_off()
                continue
            if image:
                show_images(ax, x, 4)
            else:
                ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.4)
                ax.set_xlim(-6, 6), ax.set_ylim(-5, 6)
            ax.set_title(f"{sde_name}, {budget_name(label, budget)}", fontsize=9)
    fig.suptitle(f"{label}: samples from the trained model")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def budget_name(label: str, budget: int) -> str:
    """A column title: the ODE's tolerance, else the NFE budget."""
    return f"tol {ODE_TOLERANCES[budget]:g}" if label == "ode" else f"NFE≈{budget}"


def quality_vs_nfe(path: Path, runs: list[dict], floor: list[float], sdes) -> None:
    """Sliced W2 against the measured NFE (log axis), one line per sampler, one panel per SDE;
    the grey band is the spread of exact samples of the same size (the floor)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(sdes), figsize=(5 * len(sdes), 4), squeeze=False, sharey=True)
    labels = list(dict.fromkeys(r["sampler"] for r in runs))
    for ax, sde_name in zip(axes[0], sdes, strict=True):
        for i, label in enumerate(labels):
            pts = sorted((r["nfe"], r["sw2"]) for r in runs
                         if r["sampler"] == label and r["sde"] == sde_name)
            if pts:
                ax.plot(*zip(*pts, strict=True), **line_style(i), label=line_label(label))
        ax.axhspan(min(floor), max(floor), color="0.85", label="exact sample")
        ax.set_xscale("log"), ax.set_yscale("log")
        ax.set_xlabel("NFE (score evaluations)"), ax.set_title(sde_name)
    axes[0, 0].set_ylabel("sliced W2 to the truth")
    axes[0, -1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
