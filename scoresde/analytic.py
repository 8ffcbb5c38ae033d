"""The analytic oracle: a Gaussian mixture, its exact score and log-density under any affine SDE.

For data ``p_0 = Σ_k w_k N(μ_k, Σ_k)`` and a kernel ``p_0t(x_t | x_0) = N(m(t) x_0, s(t)^2 I)``,
the marginal stays a mixture, ``p_t = Σ_k w_k N(m μ_k, m^2 Σ_k + s^2 I)``. Writing
``Σ_k = U_k diag(λ_k) U_kᵀ``, component ``k`` at time ``t`` has covariance
``U_k diag(m^2 λ_k + s^2) U_kᵀ``, so one eigendecomposition at construction gives closed forms
at every ``t``, built from differentiable ops (autograd can take ``∂/∂x`` of the score).

The oracle only reads ``sde.mean_coef(t)`` and ``sde.std(t)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from scoresde.shapes import append_dims, batch_labels, batch_time, batch_vector, require_finite


class GaussianMixture:
    """``Σ_k w_k N(μ_k, Σ_k)`` in ``d`` dimensions, optionally viewed with an ``event_shape``.

    Args:
        means: ``(K, d)`` component means.
        stds_or_covs: ``(K,)`` isotropic standard deviations, ``(K, d)`` per-axis standard
            deviations, or ``(K, d, d)`` full covariance matrices (symmetric positive-definite).
        weights: ``(K,)`` non-negative mixing weights summing to 1; uniform if omitted.
        event_shape: shape of one sample, e.g. ``(1, 8, 8)``; its size must equal ``d``.
    """

    def __init__(
        self,
        means: Tensor | Sequence,
        stds_or_covs: Tensor | Sequence,
        weights: Tensor | Sequence | None = None,
        event_shape: Sequence[int] | None = None,
    ):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d); got {tuple(means.shape)}")
        require_finite(means, "means")
        K, d = means.shape
        eigvals, eigvecs = _eigen(torch.as_tensor(stds_or_covs, dtype=torch.float64), K, d)
        if weights is None:
            weights = torch.full((K,), 1.0 / K, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape (K,) = ({K},); got {tuple(weights.shape)}")
        require_finite(weights, "weights")
        if bool((weights < 0).any()) or abs(float(weights.sum()) - 1.0) > 1e-6:
            raise ValueError(f"weights must be non-negative and sum to 1; got {weights.tolist()}")
        self.event_shape = tuple(event_shape) if event_shape is not None else (d,)
        if math.prod(self.event_shape) != d:
            raise ValueError(f"event_shape {self.event_shape} does not hold d = {d} values")
        self.means, self.eigvals, self.eigvecs, self.weights = means, eigvals, eigvecs, weights
        self._cache: dict[tuple, tuple[Tensor, ...]] = {}

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    def covariances(self) -> Tensor:
        """The ``(K, d, d)`` component covariances ``U diag(λ) Uᵀ``."""
        return torch.einsum("kde,ke,kfe->kdf", self.eigvecs, self.eigvals, self.eigvecs)

    def at(self, t: float, sde) -> GaussianMixture:
        """The mixture ``p_t`` at one time ``t`` under ``sde``, as a new oracle."""
        t = torch.tensor(float(t), dtype=torch.float64)
        m, s = sde.mean_coef(t), sde.std(t)
        out = GaussianMixture.__new__(GaussianMixture)
        out.means, out.eigvecs, out.weights = m * self.means, self.eigvecs, self.weights
        out.eigvals = m**2 * self.eigvals + s**2
        out.event_shape, out._cache = self.event_shape, {}
        return out

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> Tensor:
        """Draw ``n`` samples of shape ``(n, *event_shape)``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=_cpu(generator))
        z = torch.randn(n, self.dim, generator=_cpu(generator), dtype=torch.float64)
        x = self.means[k] + torch.einsum("nde,ne->nd", self.eigvecs[k], self.eigvals[k].sqrt() * z)
        return x.reshape(n, *self.event_shape).to(device=device, dtype=dtype)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log p_0(x)`` per sample."""
        return self._log_components(x, None, None).logsumexp(1)

    def log_prob_t(self, x: Tensor, t: float | Tensor, sde) -> Tensor:
        """``log p_t(x)`` per sample under ``sde``."""
        return self._log_components(x, t, sde).logsumexp(1)

    def score(self, x: Tensor, t: float | Tensor, sde) -> Tensor:
        """``∇_x log p_t(x) = Σ_k r_k(x) (-C_k^{-1} (x - m μ_k))``, ``r`` the responsibilities."""
        log_comp, y, lam, eigvecs = self._terms(x, t, sde)
        resp = log_comp.softmax(1)
        g = -y / lam
        if eigvecs is not None:
            g = torch.einsum("bke,kde->bkd", g, eigvecs)
        return torch.einsum("bk,bkd->bd", resp, g).reshape(x.shape)

    def score_fn(self, sde) -> Callable[[Tensor, Tensor], Tensor]:
        """The exact score of ``p_t`` under ``sde`` as a ``score_fn(x, t)``."""
        return lambda x, t: self.score(x, t, sde)

    def component(self, k: int) -> GaussianMixture:
        """Component ``k`` alone (weight 1), with the same event shape."""
        return GaussianMixture(self.means[k:k + 1], self.covariances()[k:k + 1],
                               event_shape=self.event_shape)

    def class_logits_fn(self, sde) -> Callable[[Tensor, Tensor], Tensor]:
        """The exact noisy classifier with the components as classes: ``log_prob_y(x, t)`` returns
        ``(batch, K)`` logits ``log w_k + log N(x; m μ_k, m² Σ_k + std² I)``, whose log-softmax is
        ``log p_t(k | x)`` (the input :func:`scoresde.classifier_guidance` takes)."""
        parts, log_w = [self.component(k) for k in range(self.n_components)], self.weights.log()

        def logits(x: Tensor, t: Tensor) -> Tensor:
            return torch.stack([log_w[k] + c.log_prob_t(x, t, sde) for k, c in enumerate(parts)], 1)

        return logits

    def class_score_model(self, sde) -> ClassScores:
        """The exact class-conditional score ``model(x, t, y) = ∇ log p_t(x | y)`` with the
        components as classes and ``y = K`` (or no ``y``) the unconditional ``∇ log p_t(x)``: a
        stand-in for a class-conditional network (:func:`scoresde.classifier_free_guidance`)."""
        return ClassScores(self, sde)

    def condition(self, mask: Tensor | Sequence[bool], values: Tensor | Sequence[float]) -> GaussianMixture:
        """The exact ``p(x_u | x_k = values)`` of the unknown coordinates (``mask`` False) given the
        known ones (``mask`` True, flat over the ``d`` coordinates), again a Gaussian mixture:
        ``Σ_k w'_k N(μ_ku + Σ_kuk Σ_kkk⁻¹ (v - μ_kk), Σ_kuu - Σ_kuk Σ_kkk⁻¹ Σ_kku)`` with
        ``w'_k ∝ w_k N(v; μ_kk, Σ_kkk)``. ``ValueError`` unless ``mask`` has ``d`` entries with at
        least one known and one unknown, and ``values`` one finite value per known coordinate."""
        known = torch.as_tensor(mask, dtype=torch.bool).flatten()
        if known.shape != (self.dim,) or bool(known.all()) or not bool(known.any()):
            raise ValueError(f"mask must have d = {self.dim} entries, some True (known) and some "
                             f"False; got {known.tolist()}")
        v = torch.as_tensor(values, dtype=torch.float64).flatten()
        if v.shape != (int(known.sum()),):
            raise ValueError(f"values must hold one value per known coordinate ({int(known.sum())}); "
                             f"got shape {tuple(v.shape)}")
        require_finite(v, "values")
        cov, mu = self.covariances(), self.means
        s_kk, s_uk = cov[:, known][:, :, known], cov[:, ~known][:, :, known]
        s_uu = cov[:, ~known][:, :, ~known]
        gain = torch.linalg.solve(s_kk, s_uk.transpose(1, 2)).transpose(1, 2)
        resid = v - mu[:, known]
        log_w = self.weights.log() + torch.distributions.MultivariateNormal(mu[:, known], s_kk).log_prob(v)
        means = mu[:, ~known] + torch.einsum("kuj,kj->ku", gain, resid)
        covs = s_uu - gain @ s_uk.transpose(1, 2)
        return GaussianMixture(means, 0.5 * (covs + covs.transpose(1, 2)), log_w.softmax(0))

    def responsibilities(self, x: Tensor) -> Tensor:
        """``(batch, K)`` posterior probabilities of each component given ``x`` under ``p_0``."""
        return self._log_components(x, None, None).softmax(1)

    def assign(self, x: Tensor) -> Tensor:
        """Index of the most likely component of each sample under ``p_0``."""
        return self._log_components(x, None, None).argmax(1)

    def _log_components(self, x: Tensor, t, sde) -> Tensor:
        return self._terms(x, t, sde)[0]

    def _terms(self, x: Tensor, t, sde) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Per-component ``log w_k + log N_k(x)``, whitened residual ``y``, variances ``λ_t``."""
        flat = self._flatten(x)
        means, eigvals, eigvecs, log_w, diagonal = self._params(flat)
        if sde is None:
            mean_t = means.expand(flat.shape[0], -1, -1)
            lam = eigvals.expand(flat.shape[0], -1, -1)
        else:
            t = batch_time(t, x, sde.T)
            m, s = sde.mean_coef(t), sde.std(t)
            mean_t = torch.einsum("b,kd->bkd", m, means)
            lam = append_dims(m**2, 3) * eigvals + append_dims(s**2, 3)
        y = flat.unsqueeze(1) - mean_t
        if not diagonal:
            y = torch.einsum("bkd,kde->bke", y, eigvecs)
        log_norm = -0.5 * ((y**2 / lam).sum(-1) + lam.log().sum(-1) + self.dim * math.log(2 * math.pi))
        return log_w + log_norm, y, lam, None if diagonal else eigvecs

    def _flatten(self, x: Tensor) -> Tensor:
        if x.ndim < 2 or math.prod(x.shape[1:]) != self.dim:
            raise ValueError(
                f"x must have shape (batch, ...) with {self.dim} values per sample; "
                f"got {tuple(x.shape)}"
            )
        require_finite(x, "x")
        return x.reshape(x.shape[0], self.dim)

    def _params(self, ref: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, bool]:
        key = (ref.dtype, ref.device)
        if key not in self._cache:
            diagonal = bool((self.eigvecs == torch.eye(self.dim, dtype=torch.float64)).all())
            tensors = (self.means, self.eigvals, self.eigvecs, self.weights.log())
            moved = tuple(v.to(dtype=ref.dtype, device=ref.device) for v in tensors)
            self._cache[key] = (*moved, diagonal)
        return self._cache[key]


class ClassScores:
    """``(x, t, y) -> ∇ log p_t(x | y)`` of a :class:`GaussianMixture` with its components as the
    ``num_classes`` classes; ``y`` a class index or ``(batch,)`` labels, ``num_classes`` (or
    ``None``) the unconditional score."""

    def __init__(self, gm: GaussianMixture, sde):
        self.num_classes, self.sde = gm.n_components, sde
        self.scores = [gm.component(k).score_fn(sde) for k in range(gm.n_components)] + [gm.score_fn(sde)]

    def __call__(self, x: Tensor, t: Tensor, y: int | Tensor | None = None) -> Tensor:
        labels = batch_labels(y, x.shape[0], self.num_classes, x.device, null=True)
        t = batch_vector(t, x)
        out = torch.empty_like(x)
        for k in labels.unique().tolist():
            rows = labels == k
            out[rows] = self.scores[k](x[rows], t[rows])
        return out


def _eigen(stds_or_covs: Tensor, K: int, d: int) -> tuple[Tensor, Tensor]:
    """Eigenvalues ``(K, d)`` and eigenvectors ``(K, d, d)`` of the component covariances."""
    require_finite(stds_or_covs, "stds_or_covs")
    shape = tuple(stds_or_covs.shape)
    if shape in ((K,), (K, d)):
        if bool((stds_or_covs <= 0).any()):
            raise ValueError("stds_or_covs: standard deviations must be > 0")
        eigvals = stds_or_covs.reshape(K, -1).expand(K, d) ** 2
        return eigvals.contiguous(), torch.eye(d, dtype=torch.float64).expand(K, d, d).clone()
    if shape == (K, d, d):
        if not torch.allclose(stds_or_covs, stds_or_covs.transpose(1, 2), atol=1e-10):
            raise ValueError("stds_or_covs: covariance matrices must be symmetric")
        eigvals, eigvecs = torch.linalg.eigh(stds_or_covs)
        if bool((eigvals <= 0).any()):
            raise ValueError("stds_or_covs: covariance matrices must be positive-definite")
        return eigvals, eigvecs
    raise ValueError(
        f"stds_or_covs must have shape (K,), (K, d) or (K, d, d) with K = {K}, d = {d}; "
        f"got {shape}"
    )


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("generator must be a CPU generator: the oracle samples on the CPU")
    return generator


def toy_mixture() -> GaussianMixture:
    """The 2-D three-component test mixture used throughout tests, examples and benchmarks.

    Unequal weights (0.5, 0.3, 0.2), one isotropic, one axis-aligned and one correlated
    component; the means are 5.8 to 6 apart (well below σ_max = 50).
    """
    covs = torch.tensor(
        [[[0.25, 0.0], [0.0, 0.25]], [[0.64, 0.0], [0.0, 0.09]], [[0.5, 0.3], [0.3, 0.4]]],
        dtype=torch.float64,
    )
    means = torch.tensor([[-3.0, -2.0], [3.0, -2.0], [0.0, 3.0]], dtype=torch.float64)
    return GaussianMixture(means, covs, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
