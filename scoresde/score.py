"""A network as a score function: the ``eps``, ``score`` and ``x0`` parameterisations.

With ``p_0t(x_t | x_0) = N(m(t) x_0, s(t)^2 I)``:

* ``eps``: the network predicts the noise, ``s_θ = -ε̂ / s(t)``;
* ``score``: the network output is the score itself;
* ``x0``: the network predicts the clean data, ``s_θ = (m(t) x̂_0 - x_t) / s(t)^2``.

Tweedie's formula turns any of them into a denoiser: ``E[x_0 | x_t] = (x_t + s(t)^2 s_θ) / m(t)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from scoresde.sde import SDE
from scoresde.shapes import append_dims, batch_time

PARAMETERIZATIONS = ("eps", "score", "x0")


class ScoreModel(nn.Module):
    """Wrap ``net(x, t)`` into ``score_fn(x, t) -> ∇ log p_t(x)`` for ``sde``.

    Args:
        net: a module ``(x, t) -> tensor like x`` with ``t`` of shape ``(batch,)``.
        sde: the forward SDE whose ``mean_coef`` and ``std`` define the parameterisation.
        parameterization: one of ``"eps"``, ``"score"``, ``"x0"``.
    """

    def __init__(self, net: nn.Module, sde: SDE, parameterization: str = "eps"):
        super().__init__()
        if parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"parameterization must be one of {PARAMETERIZATIONS}; got {parameterization!r}"
            )
        self.net, self.sde, self.parameterization = net, sde, parameterization

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The score ``s_θ(x, t)`` (see the module docstring for each parameterisation)."""
        t = batch_time(t, x, self.sde.T)
        out = self.net(x, t)
        if self.parameterization == "score":
            return out
        std = append_dims(self.sde.std(t), x.ndim)
        if self.parameterization == "eps":
            return -out / std
        return (append_dims(self.sde.mean_coef(t), x.ndim) * out - x) / std**2

    def denoise(self, x: Tensor, t: float | Tensor) -> Tensor:
        """Tweedie's ``E[x_0 | x_t] = (x_t + s(t)^2 s_θ(x_t, t)) / m(t)``."""
        t = batch_time(t, x, self.sde.T)
        std, m = (append_dims(v, x.ndim) for v in (self.sde.std(t), self.sde.mean_coef(t)))
        return (x + std**2 * self(x, t)) / m
