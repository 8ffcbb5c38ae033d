"""Networks taking ``(x, t)`` with continuous ``t``: score networks (an MLP for vectors, a U-Net for
images) and a noise-conditional image classifier for classifier guidance."""

from scoresde.networks.classifier import NoiseClassifier
from scoresde.networks.embedding import SinusoidalEmbedding, TimeEmbedding
from scoresde.networks.mlp import MLP
from scoresde.networks.unet import UNet

__all__ = ["MLP", "NoiseClassifier", "SinusoidalEmbedding", "TimeEmbedding", "UNet"]
