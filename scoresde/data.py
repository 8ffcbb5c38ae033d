"""Training data: 2-D toy distributions, scikit-learn's 8x8 digits, MNIST from its IDX files.

Images are returned as integer levels (``uint8``) and mapped to the model's range ``[-1, 1]`` by
:func:`to_model_range` at bin centres, ``y = 2 (x + 1/2) / L - 1`` for ``L`` levels, the same
affine map that the bits-per-dimension computation uses after uniform dequantisation.
Nothing is downloaded: MNIST is read from a directory the caller names.
"""

from __future__ import annotations

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scoresde.analytic import toy_mixture

TOYS = ("mixture", "moons", "checkerboard", "swissroll", "rings")
DATASETS = (*TOYS, "digits", "mnist")
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049


def toy_2d(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """``n`` points ``(n, 2)`` (float32) from a 2-D toy: one of :data:`TOYS`.

    ``mixture`` is the analytic oracle :func:`scoresde.analytic.toy_mixture` (exact score known).
    """
    if name not in TOYS:
        raise ValueError(f"toy name must be one of {TOYS}; got {name!r}")
    if name == "mixture":
        return toy_mixture().sample(n, generator=generator, dtype=torch.float32)
    u = torch.rand(n, 2, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return _TOY_MAKERS[name](u, noise).float()


def _moons(u: Tensor, noise: Tensor) -> Tensor:
    """Two interleaved half circles (upper and lower, shifted), Gaussian noise 0.1, centred."""
    angle = math.pi * u[:, 0]
    upper = u[:, 1] < 0.5
    x = torch.where(upper, angle.cos(), 1 - angle.cos())
    y = torch.where(upper, angle.sin(), 0.5 - angle.sin())
    return 2 * (torch.stack([x, y], 1) - torch.tensor([0.5, 0.25], dtype=u.dtype)) + 0.1 * noise


def _checkerboard(u: Tensor, noise: Tensor) -> Tensor:
    """Uniform on the 8 dark squares of a 4x4 board on ``[-4, 4]^2`` (squares of side 2)."""
    k = (u[:, 0] * 8).floor()
    row = k.div(2, rounding_mode="floor")
    col = 2 * (k % 2) + row % 2
    frac = torch.stack([(u[:, 0] * 8) % 1, u[:, 1]], 1)
    return 2 * (torch.stack([col, row], 1) + frac) - 4


def _swissroll(u: Tensor, noise: Tensor) -> Tensor:
    """The 2-D swiss roll ``r (cos r, sin r) / 3``, ``r = 1.5 π (1 + 2 u)``, noise 0.1."""
    r = 1.5 * math.pi * (1 + 2 * u[:, 0])
    return torch.stack([r * r.cos(), r * r.sin()], 1) / 3 + 0.1 * noise


def _rings(u: Tensor, noise: Tensor) -> Tensor:
    """Three concentric rings of radii 1, 2, 3 (equally likely), radial noise 0.08."""
    radius = 1 + (u[:, 1] * 3).floor() + 0.08 * noise[:, 0]
    angle = 2 * math.pi * u[:, 0]
    return radius[:, None] * torch.stack([angle.cos(), angle.sin()], 1)


_TOY_MAKERS = {"moons": _moons, "checkerboard": _checkerboard, "swissroll": _swissroll,
               "rings": _rings}


def load_digits_images() -> Tensor:
    """scikit-learn's 1,797 real 8x8 digits as ``(1797, 1, 8, 8)`` uint8 in ``{0, ..., 16}``."""
    from sklearn.datasets import load_digits

    images = load_digits().images
    return torch.from_numpy(images.astype(np.uint8)).reshape(-1, 1, 8, 8)


def load_mnist(root: str | Path, split: str = "train") -> tuple[Tensor, Tensor]:
    """MNIST images ``(n, 1, 28, 28)`` uint8 and labels ``(n,)`` from the original ``.gz`` IDX files.

    ``root`` is a directory holding ``train-images-idx3-ubyte.gz`` etc.; magic numbers, counts
    and sizes are checked and any mismatch raises ``ValueError`` naming the file.
    """
    if split not in MNIST_FILES:
        raise ValueError(f"split must be one of {tuple(MNIST_FILES)}; got {split!r}")
    root = Path(root)
    img_name, lab_name = MNIST_FILES[split]
    for name in (img_name, lab_name):
        if not (root / name).is_file():
            raise FileNotFoundError(f"MNIST file {root / name} not found (data.root = {root})")
    images = read_idx(root / img_name, IDX_IMAGES_MAGIC)
    labels = read_idx(root / lab_name, IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{root / img_name} has {images.shape[0]} images but {root / lab_name} has "
            f"{labels.shape[0]} labels"
        )
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes: big-endian header, then the data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = {IDX_IMAGES_MAGIC: 3, IDX_LABELS_MAGIC: 1}[magic]
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise ValueError(f"{path}: file too short for an IDX header ({len(raw)} bytes)")
    found, *dims = np.frombuffer(raw[:header], dtype=">u4").tolist()
    if found != magic:
        raise ValueError(f"{path}: bad magic number {found}; expected {magic}")
    if len(raw) - header != math.prod(dims):
        raise ValueError(
            f"{path}: header promises {math.prod(dims)} bytes of data for shape {tuple(dims)}, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def to_model_range(levels: Tensor, num_levels: int) -> Tensor:
    """Integer levels ``{0..L-1}`` to bin centres in ``[-1, 1]``: ``2 (x + 1/2) / L - 1``."""
    return 2 * (levels.float() + 0.5) / num_levels - 1


def from_model_range(y: Tensor, num_levels: int) -> Tensor:
    """Inverse of :func:`to_model_range`, rounded and clipped to ``{0..L-1}`` (uint8)."""
    x = ((y + 1) * num_levels / 2 - 0.5).round().clamp(0, num_levels - 1)
    return x.to(torch.uint8)


@dataclass
class Dataset:
    """Train / held-out data in the model's range, plus the integer levels for images."""

    train: Tensor
    test: Tensor
    num_levels: int | None = None
    test_levels: Tensor | None = None


def load_dataset(
    name: str, *, root: str | Path | None = None, n_train: int = 20_000, n_test: int = 2_000,
    seed: int = 0,
) -> Dataset:
    """Load :data:`DATASETS` ``name``: toys are drawn with ``seed``, digits split 90/10 by ``seed``."""
    if name not in DATASETS:
        raise ValueError(f"data name must be one of {DATASETS}; got {name!r}")
    gen = torch.Generator().manual_seed(seed)
    if name in TOYS:
        return Dataset(toy_2d(name, n_train, gen), toy_2d(name, n_test, gen))
    if name == "digits":
        levels = load_digits_images()[torch.randperm(1797, generator=gen)]
        train, test = levels[:1617], levels[1617:]
        return Dataset(to_model_range(train, 17), to_model_range(test, 17), 17, test)
    if root is None or str(root) == "":
        raise ValueError("data.root must name the directory holding the MNIST .gz files")
    train = load_mnist(root, "train")[0]
    test = load_mnist(root, "test")[0]
    return Dataset(to_model_range(train, 256), to_model_range(test, 256), 256, test)


class TensorLoader:
    """Endless shuffled mini-batches of a tensor, reshuffled each epoch by its own generator.

    Its state (generator state, current permutation, position) round-trips through
    :meth:`state_dict`, so a resumed run draws exactly the batches it would have drawn.
    """

    def __init__(self, data: Tensor, batch_size: int, seed: int = 0):
        if not 1 <= batch_size <= data.shape[0]:
            raise ValueError(f"batch_size must be in [1, {data.shape[0]}]; got {batch_size}")
        self.data, self.batch_size = data, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(data.shape[0], generator=self.generator)
        self.pos = 0

    def next(self) -> Tensor:
        """The next batch ``(batch_size, ...)``; drops an epoch's incomplete last batch."""
        if self.pos + self.batch_size > self.perm.shape[0]:
            self.perm = torch.randperm(self.data.shape[0], generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.data[idx]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])
