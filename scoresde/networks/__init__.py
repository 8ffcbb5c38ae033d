"""Score networks taking ``(x, t)`` with continuous ``t``: an MLP for vectors, a U-Net for images."""

from scoresde.networks.embedding import SinusoidalEmbedding, TimeEmbedding
from scoresde.networks.mlp import MLP
from scoresde.networks.unet import UNet

__all__ = ["MLP", "SinusoidalEmbedding", "TimeEmbedding", "UNet"]
