"""Training data: 2-D toy distributions, scikit-learn's 8x8 digits, IDX image sets, CIFAR-10.

Images are returned as integer levels (``uint8``) and mapped to the model's range ``[-1, 1]`` by
:func:`to_model_range` at bin centres, ``y = 2 (x + 1/2) / L - 1`` for ``L`` levels, the same
affine map that the bits-per-dimension computation uses after uniform dequantisation.
Nothing is downloaded: an IDX set (MNIST, Fashion-MNIST, KMNIST, ...) is read from a directory
the caller names, CIFAR-10 from its python archive ``cifar-10-python.tar.gz`` (or the extracted
batches). The CIFAR-10 batches are pickles; they are read by an unpickler that admits only the
numpy globals an array needs, never arbitrary classes.
"""

from __future__ import annotations

import gzip
import io
import math
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from torch import Tensor

from scoresde.analytic import toy_mixture

TOYS = ("mixture", "moons", "checkerboard", "swissroll", "rings")
IMAGE_SETS = ("digits", "mnist", "idx", "cifar10")
DATASETS = (*TOYS, *IMAGE_SETS)
SPLITS = ("train", "test")
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 2051, 2049
GZIP_MAGIC = b"\x1f\x8b"
#: Per split, the (images, labels) file names an IDX set may use; each also with ``.gz``.
#: MNIST, Fashion-MNIST and KMNIST share the dashed names; some mirrors use the dotted ones.
IDX_FILES = {
    "train": (("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
              ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte")),
    "test": (("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
             ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte")),
}
CIFAR10_ARCHIVE, CIFAR10_DIR = "cifar-10-python.tar.gz", "cifar-10-batches-py"
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CIFAR10_SHAPE, CIFAR10_CLASSES = (3, 32, 32), 10


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
    return _sklearn_digits()[0]


def _sklearn_digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's digits: images ``(1797, 1, 8, 8)`` uint8 and labels ``(1797,)`` int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.from_numpy(digits.images.astype(np.uint8)).reshape(-1, 1, 8, 8)
    return images, torch.from_numpy(digits.target.astype(np.int64))


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")


def load_idx(root: str | Path, split: str = "train") -> tuple[Tensor, Tensor]:
    """An IDX image set's ``split``: images ``(n, 1, h, w)`` uint8 and labels ``(n,)`` int64.

    ``root`` is a directory holding the split's pair of files under the names of
    :data:`IDX_FILES` (MNIST, Fashion-MNIST, KMNIST), gzip-compressed or not. Magic numbers,
    counts and sizes are checked and any mismatch raises ``ValueError`` naming the file.
    """
    _check_split(split)
    root = Path(root)
    image_path, label_path = (_idx_path(root, names, split) for names in IDX_FILES[split])
    images = read_idx(image_path, IDX_IMAGES_MAGIC)
    labels = read_idx(label_path, IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{image_path} has {images.shape[0]} images but {label_path} has "
                         f"{labels.shape[0]} labels")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


#: MNIST is one IDX set among others; the name stays for its callers.
load_mnist = load_idx


def _idx_path(root: Path, names: tuple[str, ...], split: str) -> Path:
    """The first of ``names`` (raw, then ``.gz``) present in ``root``; else name what was sought."""
    candidates = [name + ext for name in names for ext in ("", ".gz")]
    for candidate in candidates:
        if (root / candidate).is_file():
            return root / candidate
    raise FileNotFoundError(
        f"no IDX file for split {split!r} in data.root = {root}; looked for "
        + ", ".join(candidates)
    )


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes, gzip-compressed or not: big-endian header, then data."""
    raw = _read_maybe_gzip(path)
    dims = _idx_dims(raw, path, magic)
    header = 4 * (1 + len(dims))
    if len(raw) - header != math.prod(dims):
        raise ValueError(
            f"{path}: header promises {math.prod(dims)} bytes of data for shape {tuple(dims)}, "
            f"found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _read_maybe_gzip(path: str | Path, size: int = -1) -> bytes:
    """The first ``size`` bytes (all if ``-1``) of a file, decompressed if it starts as gzip does."""
    with open(path, "rb") as f:
        compressed = f.read(2) == GZIP_MAGIC
        f.seek(0)
        if not compressed:
            return f.read(size)
        try:
            with gzip.GzipFile(fileobj=f) as g:
                return g.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def _idx_dims(raw: bytes, path: str | Path, magic: int) -> list[int]:
    """The dimensions in an IDX header at the start of ``raw``, after checking its magic number."""
    ndim = {IDX_IMAGES_MAGIC: 3, IDX_LABELS_MAGIC: 1}[magic]
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise ValueError(f"{path}: file too short for an IDX header ({len(raw)} bytes)")
    found, *dims = np.frombuffer(raw[:header], dtype=">u4").tolist()
    if found != magic:
        raise ValueError(f"{path}: bad magic number {found}; expected {magic}")
    return dims


def load_cifar10(root: str | Path, split: str = "train") -> tuple[Tensor, Tensor]:
    """CIFAR-10's ``split``: images ``(n, 3, 32, 32)`` uint8 (RGB) and labels ``(n,)`` int64.

    ``root`` is the python archive ``cifar-10-python.tar.gz`` itself, a directory holding it, or
    a directory holding the extracted ``cifar-10-batches-py/`` or the batch files directly. The
    archive is read in memory, never extracted. ``train`` is ``data_batch_1`` to ``_5`` in order,
    ``test`` is ``test_batch``; a malformed batch raises ``ValueError`` naming it.
    """
    _check_split(split)
    names = CIFAR10_BATCHES[split]
    source = _cifar10_source(Path(root), names, split)
    batches = _archive_batches(source, names) if source.is_file() else {
        name: _parse_batch((source / name).read_bytes(), source / name) for name in names}
    images, labels = zip(*(batches[name] for name in names), strict=True)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def _cifar10_source(root: Path, names: tuple[str, ...], split: str) -> Path:
    """The archive, or the directory holding the batch files, that ``root`` points to."""
    if root.is_file():
        return root
    for directory in (root, root / CIFAR10_DIR):
        if all((directory / name).is_file() for name in names):
            return directory
    if (root / CIFAR10_ARCHIVE).is_file():
        return root / CIFAR10_ARCHIVE
    raise FileNotFoundError(
        f"no CIFAR-10 {split} batches in data.root = {root}; looked for {CIFAR10_ARCHIVE}, "
        f"{CIFAR10_DIR}/ and the batch files {', '.join(names)} themselves"
    )


def _archive_batches(archive: Path, names: tuple[str, ...]
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The batches ``names`` from a tar archive (members matched by base name), parsed."""
    batches = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in names and name not in batches:
                    batches[name] = _parse_batch(tar.extractfile(member).read(),
                                                 f"{archive}:{member.name}")
                if len(batches) == len(names):
                    break
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{archive}: not a readable tar archive ({exc})") from exc
    missing = [name for name in names if name not in batches]
    if missing:
        raise FileNotFoundError(f"{archive} has no member {CIFAR10_DIR}/{missing[0]}")
    return batches


def _parse_batch(raw: bytes, source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch pickle: images ``(n, 3, 32, 32)`` uint8 and labels ``(n,)`` int64.

    Its ``b"data"`` rows are channel-major (1024 red, 1024 green, 1024 blue values, each plane
    row-major 32x32), so a reshape gives ``(c, h, w)`` order directly.
    """
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:  # untrusted bytes: any failure to decode is a bad file
        raise ValueError(f"{source}: not a CIFAR-10 batch pickle ({exc})") from exc
    if not isinstance(batch, dict) or not {b"data", b"labels"} <= batch.keys():
        raise ValueError(f"{source}: a CIFAR-10 batch is a dict with keys b'data' and b'labels'")
    data, labels = batch[b"data"], np.asarray(batch[b"labels"])
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2
            and data.shape[1] == math.prod(CIFAR10_SHAPE)):
        raise ValueError(f"{source}: b'data' must be a uint8 array (n, 3072); got "
                         f"{type(data).__name__} {getattr(data, 'shape', '')}")
    if (labels.shape != (data.shape[0],) or labels.dtype.kind not in "iu"
            or ((labels < 0) | (labels >= CIFAR10_CLASSES)).any()):
        raise ValueError(f"{source}: b'labels' must be {data.shape[0]} integers in 0..9")
    return data.reshape(-1, *CIFAR10_SHAPE), labels.astype(np.int64)


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles ``bytes`` under protocols 0-2: Latin-1 only."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


_RECONSTRUCT = np.empty(0).__reduce__()[0]
_FROMBUFFER = np.empty(0).__reduce_ex__(5)[0]
#: The globals a pickled numpy array needs (as written by numpy 1 or 2, Python 2 or 3, any
#: protocol); no other global is admitted, so a batch cannot name code to run.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_PICKLE_GLOBALS`."""

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_GLOBALS[module, name]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def to_model_range(levels: Tensor, num_levels: int) -> Tensor:
    """Integer levels ``{0..L-1}`` to bin centres in ``[-1, 1]``: ``2 (x + 1/2) / L - 1``."""
    return 2 * (levels.float() + 0.5) / num_levels - 1


def from_model_range(y: Tensor, num_levels: int) -> Tensor:
    """Inverse of :func:`to_model_range`, rounded and clipped to ``{0..L-1}`` (uint8)."""
    x = ((y + 1) * num_levels / 2 - 0.5).round().clamp(0, num_levels - 1)
    return x.to(torch.uint8)


@dataclass
class Dataset:
    """Train / held-out data in the model's range; for images also integer levels and labels.

    ``train_levels`` / ``test_levels`` (uint8) and ``train_labels`` / ``test_labels`` (int64)
    are ``None`` for the toys, as is ``num_levels``.
    """

    train: Tensor
    test: Tensor
    num_levels: int | None = None
    test_levels: Tensor | None = None
    train_levels: Tensor | None = None
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """One sample's shape, e.g. ``(2,)``, ``(1, 28, 28)`` or ``(3, 32, 32)``."""
        return tuple(self.train.shape[1:])


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"data name must be one of {DATASETS}; got {name!r}")


def _require_root(name: str, root: str | Path | None) -> Path:
    if root is None or str(root) == "":
        raise ValueError(f"data.root must name where the {name!r} files are (a directory; "
                         "for cifar10 also the archive itself)")
    return Path(root)


def image_shape(name: str, root: str | Path | None = None) -> tuple[int, ...]:
    """One sample's shape for :data:`DATASETS` ``name``, without loading the data.

    ``(2,)`` for the toys, ``(1, 8, 8)`` for digits, ``(3, 32, 32)`` for cifar10; for an IDX set
    (``idx``, ``mnist``) only the header of the train images file in ``root`` is read.
    """
    _check_name(name)
    if name in TOYS:
        return (2,)
    if name in ("digits", "cifar10"):
        return (1, 8, 8) if name == "digits" else CIFAR10_SHAPE
    path = _idx_path(_require_root(name, root), IDX_FILES["train"][0], "train")
    _, height, width = _idx_dims(_read_maybe_gzip(path, 16), path, IDX_IMAGES_MAGIC)
    return (1, height, width)


def load_dataset(
    name: str, *, root: str | Path | None = None, n_train: int = 20_000, n_test: int = 2_000,
    seed: int = 0,
) -> Dataset:
    """Load :data:`DATASETS` ``name``.

    Toys: ``n_train`` / ``n_test`` points drawn with ``seed``. Digits: split 90/10 by a
    ``seed`` permutation. ``idx`` / ``mnist`` (an IDX set) and ``cifar10``: every image of the
    published train and test splits, read from ``root``; ``n_train`` / ``n_test`` do not apply.
    """
    _check_name(name)
    gen = torch.Generator().manual_seed(seed)
    if name in TOYS:
        return Dataset(toy_2d(name, n_train, gen), toy_2d(name, n_test, gen))
    if name == "digits":
        images, labels = _sklearn_digits()
        perm = torch.randperm(1797, generator=gen)
        images, labels = images[perm], labels[perm]
        return _image_dataset((images[:1617], labels[:1617]), (images[1617:], labels[1617:]), 17)
    root = _require_root(name, root)
    loader = load_cifar10 if name == "cifar10" else load_idx
    return _image_dataset(loader(root, "train"), loader(root, "test"), 256)


def _image_dataset(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor],
                   num_levels: int) -> Dataset:
    """A :class:`Dataset` of ``(levels, labels)`` pairs, levels mapped to the model's range."""
    return Dataset(to_model_range(train[0], num_levels), to_model_range(test[0], num_levels),
                   num_levels, test_levels=test[0], train_levels=train[0], train_labels=train[1],
                   test_labels=test[1])


class TensorLoader:
    """Endless shuffled mini-batches of a tensor, reshuffled each epoch by its own generator; with
    ``labels`` (one per row of ``data``), batches ``(x, y)`` of rows and their labels.

    Its state (generator state, current permutation, position) round-trips through
    :meth:`state_dict`, so a resumed run draws exactly the batches it would have drawn.
    """

    def __init__(self, data: Tensor, batch_size: int, seed: int = 0, labels: Tensor | None = None):
        if not 1 <= batch_size <= data.shape[0]:
            raise ValueError(f"batch_size must be in [1, {data.shape[0]}]; got {batch_size}")
        if labels is not None and tuple(labels.shape) != (data.shape[0],):
            raise ValueError(f"labels must have shape ({data.shape[0]},), one per row of data; "
                             f"got {tuple(labels.shape)}")
        self.data, self.labels, self.batch_size = data, labels, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(data.shape[0], generator=self.generator)
        self.pos = 0

    def next(self) -> Tensor | tuple[Tensor, Tensor]:
        """The next batch ``(batch_size, ...)`` (with its labels, if any); drops an epoch's
        incomplete last batch."""
        if self.pos + self.batch_size > self.perm.shape[0]:
            self.perm = torch.randperm(self.data.shape[0], generator=self.generator)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return self.rows(idx)

    def rows(self, idx: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """``data[idx]``, or ``(data[idx], labels[idx])``."""
        return self.data[idx] if self.labels is None else (self.data[idx], self.labels[idx])

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = state["perm"].clone(), int(state["pos"])
