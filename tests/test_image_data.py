"""Image sets: IDX files under MNIST / Fashion-MNIST names, CIFAR-10's python archive, shapes."""

from __future__ import annotations

import codecs
import gzip
import io
import os
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from scoresde.data import (
    CIFAR10_BATCHES,
    DATASETS,
    from_model_range,
    image_shape,
    load_cifar10,
    load_dataset,
    load_idx,
    load_mnist,
    read_idx,
)

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
DASHED = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
DOTTED = {"train": ("train-images.idx3-ubyte", "train-labels.idx1-ubyte"),
          "test": ("t10k-images.idx3-ubyte", "t10k-labels.idx1-ubyte")}
PER_BATCH = 3  # images in each tiny CIFAR-10 batch


# --- IDX -------------------------------------------------------------------------------------


def _idx(magic: int, array: np.ndarray) -> bytes:
    return np.array([magic, *array.shape], dtype=">u4").tobytes() + array.astype(np.uint8).tobytes()


def _write(path: Path, data: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _write_idx_split(root: Path, split: str, images: np.ndarray, labels: np.ndarray,
                     gz: bool = True, names: dict = DASHED) -> None:
    root.mkdir(parents=True, exist_ok=True)
    _write(root / names[split][0], _idx(2051, images), gz)
    _write(root / names[split][1], _idx(2049, labels), gz)


def _tiny_images(n: int, h: int, w: int, offset: int = 0) -> np.ndarray:
    return (np.arange(n * h * w).reshape(n, h, w) + offset) % 256


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("names", [DASHED, DOTTED], ids=["dashed", "dotted"])
def test_idx_gz_and_raw(tmp_path, gz, names):
    images, labels = _tiny_images(4, 3, 5), np.array([3, 1, 4, 1])
    _write_idx_split(tmp_path, "test", images, labels, gz, names)
    x, y = load_idx(tmp_path, "test")
    assert x.shape == (4, 1, 3, 5) and x.dtype == torch.uint8
    assert np.array_equal(x[:, 0].numpy(), images)  # rows stay rows: h = 3, w = 5
    assert y.dtype == torch.int64 and y.tolist() == labels.tolist()
    assert load_mnist is load_idx


def test_fashion_mnist_layout_through_load_dataset(tmp_path):
    root = tmp_path / "data" / "fashion"  # Fashion-MNIST's repo: the four .gz files, MNIST names
    _write_idx_split(root, "train", _tiny_images(6, 28, 28), np.arange(6))
    _write_idx_split(root, "test", _tiny_images(2, 28, 28, 7), np.array([9, 0]))
    ds = load_dataset("idx", root=root)
    assert ds.shape == (1, 28, 28) == image_shape("idx", root) == image_shape("mnist", root)
    assert ds.num_levels == 256 and ds.train.shape == (6, 1, 28, 28)
    assert torch.equal(ds.train_levels[:, 0], torch.from_numpy(_tiny_images(6, 28, 28)).byte())
    assert torch.equal(from_model_range(ds.test, 256), ds.test_levels)
    assert ds.train_labels.tolist() == list(range(6)) and ds.test_labels.tolist() == [9, 0]
    assert torch.equal(load_dataset("mnist", root=root).test_levels, ds.test_levels)


def test_image_shape_reads_only_the_header(tmp_path):
    header = np.array([2051, 60_000, 32, 24], dtype=">u4").tobytes()
    path = _write(tmp_path / "train-images-idx3-ubyte", header + bytes(100), gz=True)
    assert image_shape("idx", tmp_path) == (1, 32, 24)
    with pytest.raises(ValueError, match="promises"):  # the body is truncated
        read_idx(path, 2051)


def test_idx_missing_files_name_the_directory(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_idx(tmp_path, "train")
    for part in (str(tmp_path), "train-images-idx3-ubyte.gz", "train-images.idx3-ubyte"):
        assert part in str(err.value)
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx(2051, _tiny_images(2, 2, 2)), gz=False)
    with pytest.raises(FileNotFoundError, match=re.escape("t10k-labels-idx1-ubyte.gz")):
        load_idx(tmp_path, "test")
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        image_shape("idx", tmp_path / "nowhere")


GOOD_IDX = _idx(2051, _tiny_images(2, 3, 3))


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize(("data", "message"), [
    (_idx(2049, _tiny_images(2, 3, 3)), "bad magic number 2049"),
    (GOOD_IDX[:-1], "header promises 18 bytes"),
    (GOOD_IDX[:10], "file too short for an IDX header"),
], ids=["magic", "body", "header"])
def test_idx_bad_files_name_the_file(tmp_path, gz, data, message):
    path = _write(tmp_path / "train-images-idx3-ubyte", data, gz)
    _write(tmp_path / "train-labels-idx1-ubyte", _idx(2049, np.zeros(2)), gz)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        load_idx(tmp_path, "train")


def test_truncated_gzip_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(_idx(2049, np.arange(500)))[:-20])
    _write(tmp_path / "t10k-images-idx3-ubyte", _idx(2051, _tiny_images(500, 1, 1)), gz=False)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*truncated"):
        load_idx(tmp_path, "test")


@pytest.mark.skipif(not (MNIST / "train-images-idx3-ubyte.gz").exists(),
                    reason=f"MNIST files not found at {MNIST}")
def test_real_mnist():
    images, labels = load_idx(MNIST, "train")
    assert images.shape == (60_000, 1, 28, 28) and labels.shape == (60_000,)
    assert torch.bincount(labels).tolist() == MNIST_TRAIN_COUNTS
    assert load_idx(MNIST, "test")[0].shape == (10_000, 1, 28, 28)
    assert image_shape("mnist", MNIST) == (1, 28, 28)


# --- CIFAR-10 --------------------------------------------------------------------------------


class _Py2Pickler(pickle._Pickler):
    """Pickles ``bytes`` and ``str`` as Python 2 ``str``, the way cPickle wrote the batches."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes(self, obj: bytes) -> None:
        if self.proto == 0:
            self.write(b"S'" + codecs.escape_encode(obj)[0] + b"'\n")
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    def save_str(self, obj: str) -> None:
        self.save_bytes(obj.encode("latin-1"))

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


def _py2_dumps(obj, protocol: int) -> bytes:
    """A Python 2 / numpy 1 style pickle: ``str`` opcodes, ``numpy.core.multiarray`` globals."""
    f = io.BytesIO()
    _Py2Pickler(f, protocol=protocol).dump(obj)
    return f.getvalue().replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")


def _colour_image(index: int) -> np.ndarray:
    """(3, 32, 32): red = row, green = 64 + column, blue = 128 + index (which image)."""
    rows, cols = np.mgrid[:32, :32]
    return np.stack([rows, 64 + cols, np.full((32, 32), 128 + index)]).astype(np.uint8)


def _batch(first: int, n: int, name: str) -> dict:
    """A batch dict as in the original files; ``data`` rows are 1024 R, 1024 G, 1024 B values."""
    rows = [np.concatenate([plane.ravel() for plane in _colour_image(i)])
            for i in range(first, first + n)]
    return {b"batch_label": name.encode(), b"labels": [i % 10 for i in range(first, first + n)],
            b"data": np.stack(rows), b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def _batches(dumps) -> dict[str, bytes]:
    names = [*CIFAR10_BATCHES["train"], *CIFAR10_BATCHES["test"]]
    return {name: dumps(_batch(k * PER_BATCH, PER_BATCH, name)) for k, name in enumerate(names)}


def _write_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> dict[str, Path]:
    """A tiny CIFAR-10: the archive (with readme and meta, shuffled order) and its extraction."""
    base = tmp_path_factory.mktemp("cifar")
    batches = _batches(lambda obj: _py2_dumps(obj, 2))
    members = {"cifar-10-batches-py/readme.html": b"<html></html>",
               **{f"cifar-10-batches-py/{k}": batches[k] for k in reversed(batches)},
               "cifar-10-batches-py/batches.meta": _py2_dumps({b"label_names": []}, 2)}
    (base / "download").mkdir()
    archive = _write_tar(base / "download" / "cifar-10-python.tar.gz", members)
    extracted = base / "extracted" / "cifar-10-batches-py"
    extracted.mkdir(parents=True)
    for name, data in batches.items():
        (extracted / name).write_bytes(data)
    return {"archive": archive, "archive_dir": archive.parent, "extracted_parent": extracted.parent,
            "batch_dir": extracted}


@pytest.mark.parametrize("where", ["archive", "archive_dir", "extracted_parent", "batch_dir"])
def test_cifar10_sources(cifar, where):
    images, labels = load_cifar10(cifar[where], "train")
    assert images.shape == (5 * PER_BATCH, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.tolist() == [i % 10 for i in range(15)]
    assert images[:, 2, 0, 0].tolist() == [128 + i for i in range(15)]  # data_batch_1..5 in order
    test_images, test_labels = load_cifar10(cifar[where], "test")
    assert test_images.shape == (PER_BATCH, 3, 32, 32) and test_labels.tolist() == [5, 6, 7]


def test_cifar10_channel_order(cifar):
    images = load_cifar10(cifar["archive"], "test")[0].numpy()
    rows, cols = np.mgrid[:32, :32]
    assert np.array_equal(images[0, 0], rows)  # red plane: value = row, so not transposed
    assert np.array_equal(images[0, 1], 64 + cols)  # green
    assert np.array_equal(images[:, 2, 5, 7], [143, 144, 145])  # blue = 128 + image index
    assert np.array_equal(images[1], _colour_image(16))


@pytest.mark.parametrize("dumps", [
    lambda obj: _py2_dumps(obj, 0),
    lambda obj: pickle.dumps(obj, protocol=2),  # Python 3: bytes via _codecs.encode
    lambda obj: pickle.dumps(obj, protocol=4),
    lambda obj: pickle.dumps(obj, protocol=5),  # numpy's _frombuffer
], ids=["py2-proto0", "py3-proto2", "proto4", "proto5"])
def test_cifar10_other_pickle_protocols(tmp_path, dumps):
    for name, data in _batches(dumps).items():
        (tmp_path / name).write_bytes(data)
    images, labels = load_cifar10(tmp_path, "test")
    assert np.array_equal(images[2].numpy(), _colour_image(17)) and labels.tolist() == [5, 6, 7]


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar10_refuses_foreign_globals(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": _Exploit(marker), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*refusing to load global"):
        load_cifar10(tmp_path, "test")
    assert not marker.exists()


@pytest.mark.parametrize(("batch", "message"), [
    ({b"labels": [0]}, "keys b'data' and b'labels'"),
    ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]}, r"uint8 array \(n, 3072\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8 array"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "2 integers in 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "2 integers in 0..9"),
    ([1, 2], "a dict"),
])
def test_cifar10_bad_batches_name_the_file(tmp_path, batch, message):
    path = tmp_path / "test_batch"
    path.write_bytes(_py2_dumps(batch, 2))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*" + message):
        load_cifar10(tmp_path, "test")
    path.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": not a CIFAR-10 batch pickle"):
        load_cifar10(tmp_path, "test")


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path, "train")
    for part in (str(tmp_path), "cifar-10-python.tar.gz", "cifar-10-batches-py", "data_batch_5"):
        assert part in str(err.value)
    archive = _write_tar(tmp_path / "cifar-10-python.tar.gz",
                         {"cifar-10-batches-py/test_batch": _py2_dumps(_batch(0, 1, "t"), 2)})
    with pytest.raises(FileNotFoundError, match=re.escape(str(archive)) + ".*data_batch_1"):
        load_cifar10(archive, "train")
    (tmp_path / "broken.tar.gz").write_bytes(archive.read_bytes()[:40])
    with pytest.raises(ValueError, match=re.escape("broken.tar.gz: not a readable tar archive")):
        load_cifar10(tmp_path / "broken.tar.gz", "test")
    with pytest.raises(ValueError, match="split"):
        load_cifar10(archive, "valid")


def test_cifar10_dataset(cifar):
    ds = load_dataset("cifar10", root=cifar["archive_dir"])
    assert ds.shape == (3, 32, 32) == image_shape("cifar10")
    assert ds.num_levels == 256 and ds.train.shape == (15, 3, 32, 32) and ds.test.shape[0] == 3
    assert ds.train_levels.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert torch.equal(from_model_range(ds.train, 256), ds.train_levels)
    assert torch.equal(ds.test_levels, load_cifar10(cifar["archive"], "test")[0])
    assert ds.test_labels.tolist() == [5, 6, 7]
    assert float(ds.train.abs().max()) < 1


def test_image_shape_names():
    assert {"idx", "mnist", "cifar10"} <= set(DATASETS)
    assert image_shape("moons") == (2,) and image_shape("digits") == (1, 8, 8)
    with pytest.raises(ValueError, match="data name must be one of"):
        image_shape("svhn")
    with pytest.raises(ValueError, match=r"data\.root"):
        image_shape("idx")
    with pytest.raises(ValueError, match=r"data\.root"):
        load_dataset("cifar10")


def test_quick_config_trains_on_another_idx_set_by_changing_data_root_only(tmp_path):
    """A Fashion-MNIST-like IDX set of 32x32 images (another size than MNIST): the quick config
    with only ``data.root`` (and a tiny step budget) changed trains on it, and the checkpoint
    records the set's image shape."""
    from scoresde import cli
    from scoresde.training import read_checkpoint

    rng = np.random.default_rng(0)
    for split, n in (("train", 64), ("test", 16)):
        _write_idx_split(tmp_path / "set", split, rng.integers(0, 256, (n, 32, 32)), rng.integers(0, 10, n))
    config = str(Path(__file__).resolve().parents[1] / "configs" / "mnist_quick.yaml")
    argv = ["train", "--config", config, "--run-dir", str(tmp_path / "run"), "--device", "cpu",
            "--no-progress"]
    for item in (f"data.root={tmp_path / 'set'}", "train.steps=1", "train.batch_size=8"):
        argv += ["--set", item]
    assert cli.main(argv) == 0
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pt")["fingerprint"]["data_shape"] == [1, 32, 32]
