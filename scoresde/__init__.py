"""scoresde: score-based generative modelling through SDEs (VP / DDPM, sub-VP, VE / SMLD)."""

from scoresde.analytic import GaussianMixture, toy_mixture
from scoresde.conditional import (
    INPAINT_METHODS,
    InpaintInfo,
    classifier_free_guidance,
    classifier_guidance,
    inpaint,
)
from scoresde.elbo import ElboResult, elbo, elbo_bits_per_dim
from scoresde.likelihood import BitsPerDim, LikelihoodResult, bits_per_dim, log_likelihood
from scoresde.metrics import (
    FeatureClassifier,
    ImageJudge,
    ImageQuality,
    MixtureStats,
    frechet_distance,
    kernel_distance,
    load_or_train_classifier,
    mixture_stats,
    sliced_wasserstein,
    train_classifier,
)
from scoresde.samplers import SampleInfo, sample
from scoresde.score import ScoreModel
from scoresde.sde import SDE, VESDE, VPSDE, ReverseSDE, SubVPSDE
from scoresde.training import NonFiniteError, RunDirLocked, Trainer

__version__ = "0.1.0"

__all__ = [
    "INPAINT_METHODS",
    "SDE",
    "VESDE",
    "VPSDE",
    "BitsPerDim",
    "ElboResult",
    "FeatureClassifier",
    "GaussianMixture",
    "ImageJudge",
    "ImageQuality",
    "InpaintInfo",
    "LikelihoodResult",
    "MixtureStats",
    "NonFiniteError",
    "ReverseSDE",
    "RunDirLocked",
    "SampleInfo",
    "ScoreModel",
    "SubVPSDE",
    "Trainer",
    "bits_per_dim",
    "classifier_free_guidance",
    "classifier_guidance",
    "elbo",
    "elbo_bits_per_dim",
    "frechet_distance",
    "inpaint",
    "kernel_distance",
    "load_or_train_classifier",
    "log_likelihood",
    "mixture_stats",
    "sample",
    "sliced_wasserstein",
    "toy_mixture",
    "train_classifier",
]
