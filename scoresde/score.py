"""A network as a score function: the ``eps``, ``score``, ``x0`` and ``edm`` parameterisations.

With ``p_0t(x_t | x_0) = N(m(t) x_0, s(t)^2 I)``:

* ``eps``: the network predicts the noise, ``s_θ = -ε̂ / s(t)``;
* ``score``: the network output is the score itself;
* ``x0``: the network predicts the clean data, ``s_θ = (m(t) x̂_0 - x_t) / s(t)^2``;
* ``edm``: the preconditioned denoiser of Karras et al. (2022), written for any affine SDE.
  ``x_t / m(t) = x_0 + σ̃ ε`` with ``σ̃(t) = s(t) / m(t)`` is EDM's noisy image at noise level
  ``σ̃``, so with ``c_in = 1 / sqrt(σ̃² + σ_d²)``, ``c_skip = σ_d² / (σ̃² + σ_d²)``,
  ``c_out = σ̃ σ_d / sqrt(σ̃² + σ_d²)`` and ``c_noise = ln(σ̃) / 4``::

      D(x_t, t) = c_skip x_t / m + c_out F(c_in x_t / m, c_noise),   s_θ = (m D - x_t) / s^2.

  The network input has unit variance and its target ``(x_0 - c_skip x̂) / c_out`` too, at every
  noise level and for VP, sub-VP and VE alike: the SDE only decides the range of ``σ̃``.

Tweedie's formula turns any of them into a denoiser: ``E[x_0 | x_t] = (x_t + s(t)^2 s_θ) / m(t)``
(for ``edm`` it is ``D`` itself).

A class-conditional network (``net.num_classes = K > 0``) takes a third argument, the labels
``y in {0, ..., K}`` with ``K`` the null label; ``model(x, t, y)`` is then ``s_θ(x, t | y)`` and
``model(x, t)`` the unconditional ``s_θ(x, t | ∅)``.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from scoresde.sde import SDE
from scoresde.shapes import append_dims, batch_time

PARAMETERIZATIONS = ("eps", "score", "x0", "edm")


class ScoreModel(nn.Module):
    """Wrap ``net(x, t)`` into ``score_fn(x, t) -> ∇ log p_t(x)`` for ``sde``.

    Args:
        net: a module ``(x, t) -> tensor like x`` with ``t`` of shape ``(batch,)`` (for ``edm`` the
            second argument is ``c_noise = ln(σ̃) / 4`` instead of ``t``); if it has
            ``num_classes > 0``, also ``(x, t, y)`` with class labels ``y``.
        sde: the forward SDE whose ``mean_coef`` and ``std`` define the parameterisation.
        parameterization: one of ``"eps"``, ``"score"``, ``"x0"``, ``"edm"``.
        sigma_data: ``σ_d``, the data's standard deviation assumed by ``edm`` (0.5 in EDM).
    """

    def __init__(self, net: nn.Module, sde: SDE, parameterization: str = "eps",
                 sigma_data: float = 0.5):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}; got {parameterization!r}"
            )
        if not (math.isfinite(sigma_data) and sigma_data > 0):
            raise ValueError(f"sigma_data must be finite and > 0; got {sigma_data}")
        self.net, self.sde, self.parameterization = net, sde, parameterization
        self.sigma_data = float(sigma_data)

    @property
    def num_classes(self) -> int:
        """``K``, the classes the network is conditioned on (0: unconditional); ``K`` is the null label."""
        return getattr(self.net, "num_classes", 0)

    def forward(self, x: Tensor, t: float | Tensor, y: int | Tensor | None = None) -> Tensor:
        """The score ``s_θ(x, t)``, or ``s_θ(x, t | y)`` for class labels ``y`` (see the module
        docstring for each parameterisation)."""
        t = batch_time(t, x, self.sde.T)
        labels = self._labels(y)
        if self.parameterization == "edm":
            return self._score_of_denoised(x, t, self._edm_denoise(x, t, labels))
        out = self.net(x, t, *labels)
        if self.parameterization == "score":
            return out
        std = append_dims(self.sde.std(t), x.ndim)
        if self.parameterization == "eps":
            return -out / std
        return self._score_of_denoised(x, t, out)

    def denoise(self, x: Tensor, t: float | Tensor, y: int | Tensor | None = None) -> Tensor:
        """Tweedie's ``E[x_0 | x_t] = (x_t + s(t)^2 s_θ(x_t, t)) / m(t)`` (given ``y`` if passed)."""
        t = batch_time(t, x, self.sde.T)
        if self.parameterization == "edm":
            return self._edm_denoise(x, t, self._labels(y))
        return self.sde.denoise(x, t, self(x, t, y))

    def preconditioning(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """EDM's ``(c_skip, c_out, c_in, c_noise)`` at ``σ̃ = s(t) / m(t)``, each ``(batch,)``."""
        sigma, sd2 = self.sde.ratio(t), self.sigma_data**2
        root = (sigma**2 + sd2).sqrt()
        return sd2 / (sigma**2 + sd2), sigma * self.sigma_data / root, 1 / root, sigma.log() / 4

    def _labels(self, y: int | Tensor | None) -> tuple:
        """``(y,)`` to pass on to the network, ``()`` without labels."""
        if y is None:
            return ()
        if not self.num_classes:
            raise ValueError("y given, but this model is unconditional (model.num_classes = 0)")
        return (y,)

    def _edm_denoise(self, x: Tensor, t: Tensor, labels: tuple = ()) -> Tensor:
        """``D = c_skip x̂ + c_out F(c_in x̂, c_noise)`` with ``x̂ = x_t / m(t)``."""
        c_skip, c_out, c_in, c_noise = self.preconditioning(t)
        x_hat = x / append_dims(self.sde.mean_coef(t), x.ndim)
        out = self.net(append_dims(c_in, x.ndim) * x_hat, c_noise, *labels)
        return append_dims(c_skip, x.ndim) * x_hat + append_dims(c_out, x.ndim) * out

    def _score_of_denoised(self, x: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """``s = (m(t) x̂_0 - x_t) / s(t)^2``."""
        m, std = (append_dims(v, x.ndim) for v in (self.sde.mean_coef(t), self.sde.std(t)))
        return (m * x0 - x) / std**2
