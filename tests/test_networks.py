"""Networks: shapes for vectors, 8x8 and 28x28 images; time conditioning; per-sample independence."""

from __future__ import annotations

import pytest
import torch

from scoresde.networks import MLP, SinusoidalEmbedding, UNet

NETS = [
    (lambda: MLP(3, width=32, depth=2, embed_dim=16), (3,)),
    (lambda: UNet(1, 8, channels=16, channel_mult=(1, 2), attn_resolutions=(4,)), (1, 8, 8)),
    (lambda: UNet(1, 28, channels=8, channel_mult=(1, 2, 2), attn_resolutions=(7,)), (1, 28, 28)),
]


@pytest.mark.parametrize("index", range(3))
def test_shape_time_and_independence(index):
    torch.manual_seed(0)
    make, shape = NETS[index]
    net = make()
    x = torch.randn(3, *shape)
    t = torch.tensor([0.1, 0.5, 0.9])
    out = net(x, t)
    assert out.shape == x.shape and bool(torch.isfinite(out).all())
    assert torch.equal(net(x, 0.5), net(x, torch.full((3,), 0.5)))
    assert not torch.allclose(net(x, 0.2), net(x, 0.8))  # conditioned on t
    # Per-sample independence (needed by the likelihood): changing sample 0 leaves 1 and 2 alone.
    x2 = x.clone()
    x2[0] += 1
    torch.testing.assert_close(net(x2, t)[1:], out[1:])
    out.square().sum().backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None]
    assert dead == []


def test_bad_inputs():
    with pytest.raises(ValueError, match="x must have shape"):
        MLP(2)(torch.randn(4, 3), 0.5)
    with pytest.raises(ValueError, match="x must have shape"):
        UNet(1, 8)(torch.randn(4, 1, 9, 9), 0.5)
    with pytest.raises(ValueError, match="image_size"):
        UNet(1, 28, channel_mult=(1, 2, 2, 2))
    with pytest.raises(ValueError, match="divisible by groups"):
        UNet(1, 8, channels=12, groups=8)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(batch,\)"):
        MLP(2)(torch.randn(4, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="dim must be"):
        SinusoidalEmbedding(5)


def test_unet_moves_between_dtypes():
    net = UNet(1, 8, channels=8, attn_resolutions=()).to(torch.float64)
    assert net(torch.randn(2, 1, 8, 8, dtype=torch.float64), 0.5).dtype == torch.float64
