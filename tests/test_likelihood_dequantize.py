"""Dequantisation and the bits/dim arithmetic (scoresde/dequantize.py)."""

import math

import pytest
import torch

from scoresde.dequantize import dequantize, log_jacobian, nats_to_bits_per_dim


def test_dequantized_values_stay_in_their_bins():
    """Every y lies in the image of its own bin: [x, x + 1) / L scaled to the range."""
    x = torch.randint(0, 256, (64, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    for lo, hi in [(-1.0, 1.0), (0.0, 1.0)]:
        y, log_det = dequantize(x, data_range=(lo, hi), generator=torch.Generator().manual_seed(1))
        u = (y - lo) / (hi - lo) * 256
        assert y.shape == x.shape and y.dtype == torch.get_default_dtype()
        assert bool(((u >= x - 1e-4) & (u < x + 1 + 1e-4)).all())
        assert torch.allclose(log_det, torch.full((64,), 16 * math.log(hi - lo)))


def test_uniform_density_gives_exactly_log2_levels():
    """The uniform density on the data range (p_y = a^-D) is the uniform model on the L levels.

    Its bits/dim must be log2(L) = 8 whichever range the model uses.
    """
    dim = 12
    for lo, hi in [(-1.0, 1.0), (0.0, 1.0), (-3.0, 5.0)]:
        nll = torch.tensor([dim * math.log(hi - lo)])
        bpd = nats_to_bits_per_dim(nll, dim, num_levels=256, data_range=(lo, hi))
        assert bpd.item() == pytest.approx(8.0, abs=1e-12)


def test_offsets_are_7_and_8():
    assert nats_to_bits_per_dim(0.0, 5, data_range=(-1, 1)).item() == pytest.approx(7.0)
    assert nats_to_bits_per_dim(0.0, 5, data_range=(0, 1)).item() == pytest.approx(8.0)
    assert nats_to_bits_per_dim(math.log(2) * 5, 5, num_levels=None).item() == pytest.approx(1.0)
    assert log_jacobian(3, (0, 2)) == pytest.approx(3 * math.log(2))


@pytest.mark.parametrize(
    "bad",
    [torch.tensor([[0, 256]]), torch.tensor([[-1, 3]]), torch.tensor([[0.5, 1.0]]),
     torch.tensor([[float("nan"), 1.0]]), torch.tensor([1, 2])],
)
def test_bad_data_is_refused(bad):
    with pytest.raises(ValueError, match="x"):
        dequantize(bad)


def test_bad_arguments_are_refused():
    x = torch.zeros(2, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="num_levels"):
        dequantize(x, num_levels=1)
    with pytest.raises(ValueError, match="data_range"):
        dequantize(x, data_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="dim"):
        nats_to_bits_per_dim(1.0, 0)
