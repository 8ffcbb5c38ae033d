"""Figures without a display: ``matplotlib`` on the Agg backend, image grids and sample plots.

matplotlib is imported only when a figure is drawn, so the library itself does not need it.
"""

from __future__ import annotations

import math
from pathlib import Path

from einops import rearrange
from torch import Tensor


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def image_grid(x: Tensor, rows: int, cols: int | None = None) -> Tensor:
    """The first ``rows * cols`` images of ``x`` (``(n, c, h, w)``, model range ``[-1, 1]``; ``cols``
    defaults to ``rows``) tiled row by row into one ``(rows h, cols w, c)`` picture in ``[0, 1]``:
    pixel ``(x + 1) / 2``, clamped."""
    cols = rows if cols is None else cols
    grid = rearrange(x[: rows * cols].detach().cpu(), "(r k) c h w -> (r h) (k w) c", r=rows)
    return ((grid + 1) / 2).clamp(0, 1)


def show_images(ax, x: Tensor, rows: int, cols: int | None = None) -> None:
    """:func:`image_grid` drawn on ``ax`` (grey for one channel), without axes."""
    grid = image_grid(x, rows, cols)
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(grid.numpy())
    ax.axis("off")


def plot_samples(x: Tensor, out: Path, title: str) -> None:
    """A scatter plot of 2-D samples, or a grid of up to 10 x 10 images, written to ``out``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    if x.ndim == 2:
        ax.scatter(x[:, 0].cpu().numpy(), x[:, 1].cpu().numpy(), s=2, alpha=0.5)
        ax.set_aspect("equal")
    else:
        show_images(ax, x, math.isqrt(min(len(x), 100)))
    ax.set_title(title)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
