"""Image quality on the features of the data set's own classifier, beside the data's floor.

:func:`frechet_distance` and :func:`kernel_distance` compare two sets of features;
:class:`ImageJudge` extracts them (and the class probabilities) for samples and for the test split,
and reports both distances, the confident share and the class histogram in an :class:`ImageQuality`,
each beside the same numbers for a random subset of the train split of the same size: real data's
floor, which no sample of that size can be expected to beat.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

from scoresde.metrics.classifier import FeatureClassifier, batched, model_images
from scoresde.shapes import require_finite

CONFIDENT = 0.9


def _features(f: Tensor | np.ndarray, name: str) -> Tensor:
    """``f`` as a float64 ``(n, d)`` CPU tensor; ``ValueError`` naming ``name`` otherwise."""
    f = torch.as_tensor(f).detach().to("cpu", torch.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be features of shape (n, d); got {tuple(f.shape)}")
    require_finite(f, name)
    return f


def _pair(f1: Tensor | np.ndarray, f2: Tensor | np.ndarray) -> tuple[Tensor, Tensor]:
    a, b = _features(f1, "f1"), _features(f2, "f2")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"f1 and f2 must have the same feature dimension; got {a.shape[1]} and {b.shape[1]}")
    return a, b


def _sqrtm_psd(s: Tensor) -> Tensor:
    """Symmetric square root ``V diag(sqrt(max(w, 0))) Vᵀ`` of a symmetric PSD matrix ``s = V diag(w) Vᵀ``."""
    w, v = torch.linalg.eigh(s)
    return (v * w.clamp(min=0).sqrt()) @ v.T


def frechet_distance(f1: Tensor | np.ndarray, f2: Tensor | np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets ``(n1, d)`` and ``(n2, d)``:

    ``FD = ||μ1 - μ2||² + Tr(Σ1 + Σ2 - 2 (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2})``

    in float64, the last trace as ``Σ_i sqrt(λ_i)`` over the eigenvalues of the symmetric
    ``Σ1^{1/2} Σ2 Σ1^{1/2}`` (tiny negative ones from rounding clipped to 0). Raises ``ValueError``
    naming the argument if a set has ``n <= d`` (its covariance would be singular), the dimensions
    differ or a feature is NaN / inf.
    """
    a, b = _pair(f1, f2)
    for name, f in (("f1", a), ("f2", b)):
        if f.shape[0] <= f.shape[1]:
            raise ValueError(f"FD needs more samples than feature dimensions: {name} has n = {f.shape[0]} "
                             f"<= d = {f.shape[1]}")
    s1, s2 = torch.cov(a.T), torch.cov(b.T)
    root1 = _sqrtm_psd(s1)
    m = root1 @ s2 @ root1
    cross = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + s1.trace() + s2.trace() - 2 * cross)


def _polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """``k(x, y) = (xᵀy / d + 1)³`` for all pairs of rows."""
    return (x @ y.T / x.shape[1] + 1) ** 3


def _mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """``Σ_{i≠j} k(x_i, x_j) / (m(m-1)) + Σ_{i≠j} k(y_i, y_j) / (p(p-1)) - 2 Σ_{i,j} k(x_i, y_j) / (m p)``
    for ``x`` ``(m, d)`` and ``y`` ``(p, d)``."""
    m, p = x.shape[0], y.shape[0]
    kxx, kyy = _polynomial_kernel(x, x), _polynomial_kernel(y, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (p * (p - 1))
    return float(within_x + within_y - 2 * _polynomial_kernel(x, y).mean())


def kernel_distance(
    f1: Tensor | np.ndarray,
    f2: Tensor | np.ndarray,
    *,
    subset_size: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """Kernel (inception-style, "KID") distance: unbiased MMD² with ``k(x, y) = (xᵀy / d + 1)³``.

    Both sets are shuffled and cut into the same number ``B = min(n1, n2) // m`` of disjoint
    subsets, ``m = min(subset_size, min(n1, n2) // 2)`` (so ``B >= 2``); subset ``b`` of ``f1``
    (``X_b``, ``m_b`` rows) is compared with subset ``b`` of ``f2`` (``Y_b``, ``p_b`` rows) by

    ``MMD²_b = Σ_{i≠j} k(x_i, x_j) / (m_b(m_b-1)) + Σ_{i≠j} k(y_i, y_j) / (p_b(p_b-1))
    - 2 Σ_{i,j} k(x_i, y_j) / (m_b p_b)``,

    each an unbiased estimate of MMD², and independent of the others since no sample is reused.
    Returns ``(mean_b MMD²_b, std_b MMD²_b / sqrt(B))``, the mean and its standard error.
    """
    a, b = _pair(f1, f2)
    m = min(subset_size, min(a.shape[0], b.shape[0]) // 2)
    if m < 2:
        raise ValueError(f"KD needs at least 2 disjoint subsets of >= 2 samples; got n = {a.shape[0]} (f1) "
                         f"and {b.shape[0]} (f2), subset_size = {subset_size}")
    n_subsets = min(a.shape[0], b.shape[0]) // m
    xs = a[torch.randperm(a.shape[0], generator=generator)].tensor_split(n_subsets)
    ys = b[torch.randperm(b.shape[0], generator=generator)].tensor_split(n_subsets)
    values = torch.tensor([_mmd2_unbiased(x, y) for x, y in zip(xs, ys, strict=True)], dtype=torch.float64)
    return float(values.mean()), float(values.std() / n_subsets**0.5)


@dataclass
class ImageQuality:
    """Quality of ``n`` image samples judged by the data set's classifier, beside the data's floor.

    ``fd`` (:func:`frechet_distance`) and ``kd`` ± ``kd_se`` (:func:`kernel_distance`) compare the
    samples' features with the test split's; ``confident`` is the share of samples whose largest
    class probability exceeds 0.9, ``class_hist`` the share of samples assigned to each of the ``K``
    classes and ``max_class_dev = max_k |share_k - 1/K|``. The ``*_floor`` numbers are the same
    measures for ``n`` random real train images (against the same test split).
    """

    fd: float
    kd: float
    kd_se: float
    confident: float
    class_hist: list[float]
    max_class_dev: float
    n: int
    fd_floor: float
    kd_floor: float
    kd_floor_se: float
    confident_floor: float
    max_class_dev_floor: float

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        """Markdown rows: each measure of the samples beside the data's floor."""
        rows = [
            ("FD", f"{self.fd:.4g}", f"{self.fd_floor:.4g}"),
            ("KD", f"{self.kd:.4g} ± {self.kd_se:.2g}", f"{self.kd_floor:.4g} ± {self.kd_floor_se:.2g}"),
            (f"confident (p > {CONFIDENT})", f"{self.confident:.1%}", f"{self.confident_floor:.1%}"),
            ("max class deviation", f"{self.max_class_dev:.1%}", f"{self.max_class_dev_floor:.1%}"),
            ("class shares", " ".join(f"{s:.2f}" for s in self.class_hist), ""),
        ]
        lines = [f"| measure (n = {self.n}) | samples | data floor |", "|---|---|---|"]
        return "\n".join([*lines, *(f"| {a} | {b} | {c} |" for a, b, c in rows)])


def _class_stats(probs: Tensor) -> dict:
    """Confident share, class histogram and its largest deviation from uniform, of ``(n, K)``
    class probabilities."""
    k = probs.shape[1]
    hist = torch.bincount(probs.argmax(1), minlength=k).double() / probs.shape[0]
    return {"confident": float((probs.max(1).values > CONFIDENT).double().mean()),
            "class_hist": hist.tolist(), "max_class_dev": float((hist - 1 / k).abs().max())}


class ImageJudge:
    """Judges image samples against a data set's test split with its :class:`FeatureClassifier`.

    The test split's features are extracted once; the floor for ``n`` samples (a random ``n``-subset
    of ``train_images``, drawn with ``seed``) is computed once per ``n`` and kept. Images are
    ``uint8`` levels or floats in ``[-1, 1]`` (see :func:`~scoresde.metrics.classifier.model_images`).
    """

    def __init__(self, classifier: FeatureClassifier, test_images: Tensor | np.ndarray,
                 train_images: Tensor | np.ndarray, *, subset_size: int = 100, seed: int = 0):
        self.classifier = classifier.eval()
        self.device = next(classifier.parameters()).device
        self.subset_size, self.seed = subset_size, seed
        self.train_images = torch.as_tensor(train_images)
        self._check(self.train_images[:1], "train_images")
        self.test_features, _ = self.outputs(test_images, "test_images")
        self._floors: dict[int, dict] = {}

    def outputs(self, images: Tensor | np.ndarray, name: str = "images") -> tuple[Tensor, Tensor]:
        """Features ``(n, feature_dim)`` (float64) and class probabilities ``(n, K)`` of ``images``."""
        x = self._check(images, name)
        features = batched(self.classifier.features, x, self.device)
        probs = batched(self.classifier.head, features, self.device).softmax(1)
        return features.double(), probs

    def _check(self, images: Tensor | np.ndarray, name: str) -> Tensor:
        """``images`` in the model's range; ``ValueError`` naming both shapes unless the classifier's."""
        x = model_images(images, name)
        expected = self.classifier.image_shape
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"{name} have shape (c, h, w) = {tuple(x.shape[1:])}, but the classifier "
                             f"expects {expected}")
        return x

    def _scores(self, features: Tensor, probs: Tensor, generator: torch.Generator | None) -> dict:
        kd, kd_se = kernel_distance(features, self.test_features, subset_size=self.subset_size,
                                    generator=generator)
        return {"fd": frechet_distance(features, self.test_features), "kd": kd, "kd_se": kd_se,
                **_class_stats(probs)}

    def floor(self, n: int) -> dict:
        """FD, KD, confident share and max class deviation of ``n`` random train images (kept per ``n``)."""
        if n not in self._floors:
            n_train = len(self.train_images)
            if n > n_train:
                raise ValueError(f"the floor for n = {n} samples needs n train images; there are {n_train}")
            gen = torch.Generator().manual_seed(self.seed)
            subset = self.train_images[torch.randperm(n_train, generator=gen)[:n]]
            self._floors[n] = self._scores(*self.outputs(subset, "train_images"), gen)
        return dict(self._floors[n])

    def judge(self, samples: Tensor | np.ndarray, generator: torch.Generator | None = None) -> ImageQuality:
        """Every measure of :class:`ImageQuality` for ``samples`` (``generator``: the KD subsets)."""
        features, probs = self.outputs(samples, "samples")
        n = features.shape[0]
        floor = self.floor(n)
        return ImageQuality(**self._scores(features, probs, generator), n=n, fd_floor=floor["fd"],
                            kd_floor=floor["kd"], kd_floor_se=floor["kd_se"],
                            confident_floor=floor["confident"], max_class_dev_floor=floor["max_class_dev"])
