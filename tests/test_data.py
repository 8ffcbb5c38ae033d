"""Data: toy shapes and geometry, digits, MNIST IDX parsing and validation, the loader.

The other image sets (any IDX set, CIFAR-10) are tested in ``test_image_data.py``.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import scoresde as ss
from scoresde.data import (
    TOYS,
    TensorLoader,
    from_model_range,
    load_dataset,
    load_digits_images,
    load_mnist,
    read_idx,
    to_model_range,
    toy_2d,
)

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(
    not (MNIST / "t10k-images-idx3-ubyte.gz").exists(),
    reason=f"MNIST files not found at {MNIST} (expected ../shared/data/mnist beside the checkout)",
)


@pytest.mark.parametrize("name", TOYS)
def test_toys_shape_and_determinism(name):
    a = toy_2d(name, 500, torch.Generator().manual_seed(0))
    b = toy_2d(name, 500, torch.Generator().manual_seed(0))
    assert a.shape == (500, 2) and a.dtype == torch.float32 and torch.equal(a, b)
    assert bool(torch.isfinite(a).all())


def test_toy_geometry():
    gen = torch.Generator().manual_seed(0)
    board = toy_2d("checkerboard", 4000, gen)
    cells = ((board + 4) / 2).floor()
    assert bool(((cells.sum(1) % 2) == 0).all())  # only the dark squares
    radius = toy_2d("rings", 4000, gen).norm(dim=1)
    assert (radius - radius.round()).abs().max() < 0.5  # 8 noise sds between rings of step 1
    # The oracle mixture: component counts pass a χ² test with 2 dof at the 1e-4 level (18.4).
    assert ss.mixture_stats(ss.toy_mixture(), toy_2d("mixture", 3000, gen)).chi2 < 18.4


def test_bad_names():
    with pytest.raises(ValueError, match="toy name must be one of"):
        toy_2d("spiral", 10)
    with pytest.raises(ValueError, match="data name must be one of"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match=r"data\.root"):
        load_dataset("mnist")


def test_digits():
    levels = load_digits_images()
    assert levels.shape == (1797, 1, 8, 8) and levels.dtype == torch.uint8
    assert int(levels.max()) == 16 and int(levels.min()) == 0
    ds = load_dataset("digits", seed=0)
    assert ds.num_levels == 17 and ds.train.shape[0] + ds.test.shape[0] == 1797
    assert float(ds.train.abs().max()) < 1
    assert torch.equal(from_model_range(ds.test, 17), ds.test_levels)
    assert torch.equal(from_model_range(ds.train, 17), ds.train_levels)
    assert ds.shape == (1, 8, 8) and ds.train_labels.dtype == ds.test_labels.dtype == torch.int64
    # Labels follow their images through the split's permutation.
    from sklearn.datasets import load_digits

    perm = torch.randperm(1797, generator=torch.Generator().manual_seed(0))
    target = torch.from_numpy(load_digits().target)[perm]
    assert ds.train_labels.tolist() == target[:1617].tolist()
    assert ds.test_labels.tolist() == target[1617:].tolist()


def test_toy_dataset_fields():
    ds = load_dataset("moons", n_train=10, n_test=5)
    assert ds.shape == (2,) and ds.train.shape == (10, 2) and ds.test.shape == (5, 2)
    assert ds.num_levels is ds.train_levels is ds.test_levels is None
    assert ds.train_labels is ds.test_labels is None


def test_model_range_round_trip():
    x = torch.arange(256, dtype=torch.uint8)
    y = to_model_range(x, 256)
    assert float(y.min()) == pytest.approx(-1 + 1 / 256) and float(y.max()) == pytest.approx(1 - 1 / 256)
    assert torch.equal(from_model_range(y, 256), x)


def _write_idx(path: Path, magic: int, dims: list[int], payload: bytes) -> None:
    header = np.array([magic, *dims], dtype=">u4").tobytes()
    with gzip.open(path, "wb") as f:
        f.write(header + payload)


def test_idx_validation(tmp_path):
    _write_idx(tmp_path / "ok.gz", 2051, [2, 3, 3], bytes(range(18)))
    assert read_idx(tmp_path / "ok.gz", 2051).shape == (2, 3, 3)
    _write_idx(tmp_path / "magic.gz", 2049, [2, 3, 3], bytes(18))
    with pytest.raises(ValueError, match="bad magic number 2049"):
        read_idx(tmp_path / "magic.gz", 2051)
    _write_idx(tmp_path / "short.gz", 2051, [2, 3, 3], bytes(17))
    with pytest.raises(ValueError, match="promises 18 bytes"):
        read_idx(tmp_path / "short.gz", 2051)
    with pytest.raises(FileNotFoundError, match=r"data\.root"):
        load_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        load_mnist(tmp_path, "valid")


def test_mnist_count_mismatch(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 2051, [2, 28, 28], bytes(2 * 784))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", 2049, [3], bytes(3))
    with pytest.raises(ValueError, match="2 images but"):
        load_mnist(tmp_path, "test")


@needs_mnist
def test_mnist_test_split():
    images, labels = load_mnist(MNIST, "test")
    assert images.shape == (10_000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10_000,) and set(labels.unique().tolist()) == set(range(10))


def test_loader_epochs_and_state():
    data = torch.arange(10).float()[:, None]
    loader = TensorLoader(data, 3, seed=0)
    epoch = torch.cat([loader.next() for _ in range(3)])
    assert sorted(epoch[:, 0].tolist()) == sorted(set(epoch[:, 0].tolist()))  # no repeats
    state = loader.state_dict()
    ahead = [loader.next() for _ in range(5)]
    loader.load_state_dict(state)
    assert all(torch.equal(a, loader.next()) for a in ahead)
    with pytest.raises(ValueError, match="batch_size"):
        TensorLoader(data, 11)
