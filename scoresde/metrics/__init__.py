"""Sample-quality metrics: mixture statistics against the oracle; image quality on the features of
the data set's own classifier (Fréchet and kernel distances, confident share, class histogram)."""

from scoresde.metrics.cache import load_or_train_classifier
from scoresde.metrics.classifier import FeatureClassifier, train_classifier
from scoresde.metrics.images import ImageJudge, ImageQuality, frechet_distance, kernel_distance
from scoresde.metrics.mixture import MixtureStats, SlicedWasserstein, mixture_stats, sliced_wasserstein

__all__ = [
    "FeatureClassifier",
    "ImageJudge",
    "ImageQuality",
    "MixtureStats",
    "SlicedWasserstein",
    "frechet_distance",
    "kernel_distance",
    "load_or_train_classifier",
    "mixture_stats",
    "sliced_wasserstein",
    "train_classifier",
]
