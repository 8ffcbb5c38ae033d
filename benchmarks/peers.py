"""Peer libraries driven by an exact ``score_fn(x, t)``: k-diffusion's samplers and diffusers'
schedulers, each given the same score through its own model interface. Optional: each loader
returns ``None`` (with the reason in :data:`MISSING`) when its package is not installed.

Install (not project dependencies):

    pip install diffusers                       # 0.42.1 measured
    pip install --no-deps k-diffusion torchsde  # k-diffusion 0.1.1.post1

k-diffusion's package ``__init__`` imports torchvision, scikit-image, clean-fid and CLIP; its
``sampling.py`` needs only torch, scipy, torchdiffeq, torchsde, tqdm and ``utils.append_dims``,
so :func:`load_k_diffusion` loads that one file with a stub ``utils`` module.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
from collections.abc import Callable

import torch
from torch import Tensor

from scoresde.samplers.common import CountingScore, tweedie
from scoresde.shapes import append_dims

MISSING: dict[str, str] = {}


@functools.cache
def load_k_diffusion() -> types.ModuleType | None:
    """k-diffusion's ``sampling`` module alone, or ``None`` if k-diffusion/torchsde are missing."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or importlib.util.find_spec("torchsde") is None:
        MISSING["k-diffusion"] = "pip install --no-deps k-diffusion torchsde"
        return None
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = append_dims
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("k_diffusion", package)
    sys.modules.setdefault("k_diffusion.utils", utils)
    path = f"{spec.submodule_search_locations[0]}/sampling.py"
    module_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def load_diffusers() -> types.ModuleType | None:
    """The ``diffusers`` package, or ``None`` if it is not installed."""
    if importlib.util.find_spec("diffusers") is None:
        MISSING["diffusers"] = "pip install diffusers"
        return None
    import diffusers

    return diffusers


def ratio_of_time(sde, t: float) -> float:
    """``σ̃(t) = std(t) / m(t)``."""
    t = torch.tensor(t, dtype=torch.float64)
    return float(sde.ratio(t))


class KDenoiser:
    """k-diffusion's model ``D(x̃, σ̃)`` from ``score_fn``: ``x = m(t) x̃`` with ``σ̃(t) = σ̃``,
    ``D = (x + std(t)² s(x, t)) / m(t)`` (Tweedie). Counts score evaluations in ``nfe``."""

    def __init__(self, score_fn: Callable, sde):
        self.score = CountingScore(score_fn)
        self.sde = sde

    @property
    def nfe(self) -> int:
        return self.score.nfe

    def __call__(self, x_scaled: Tensor, sigma: Tensor) -> Tensor:
        t = self.sde.time_of_ratio(sigma.to(torch.float64)).clamp(0, self.sde.T).to(x_scaled.dtype)
        x = append_dims(self.sde.mean_coef(t), x_scaled.ndim) * x_scaled
        return tweedie(self.score, self.sde, x, t)


def k_sample(kd, name: str, score_fn, sde, x_T: Tensor, steps: int, eps: float,
             grid: str = "karras", **options) -> tuple[Tensor, int]:
    """Run ``kd.sample_<name>`` (with ``options``) from the prior sample ``x_T`` (``x̃ = x_T / m(T)``)
    over k-diffusion's ``grid`` of ``steps`` levels from ``σ̃(T)`` to ``σ̃(eps)``, then σ = 0 (the
    final step to 0 returns the denoised estimate): ``"karras"`` (ρ = 7), ``"exponential"``, or
    ``"vp"`` (uniform in the VP SDE's t, for a VP ``sde`` only)."""
    lo, hi = ratio_of_time(sde, eps), ratio_of_time(sde, sde.T)
    if grid == "vp":
        sigmas = kd.get_sigmas_vp(steps, beta_d=sde.beta_max - sde.beta_min, beta_min=sde.beta_min,
                                  eps_s=eps)
    else:
        get = kd.get_sigmas_karras if grid == "karras" else kd.get_sigmas_exponential
        sigmas = get(steps, lo, hi)
    sigmas = sigmas.to(torch.float64)
    sigmas[0] = hi
    model = KDenoiser(score_fn, sde)
    x = x_T / float(sde.mean_coef(torch.tensor(sde.T, dtype=torch.float64)))
    x = getattr(kd, f"sample_{name}")(model, x, sigmas.to(x_T.dtype), disable=True, **options)
    return x, model.nfe


def vp_time_of_alpha_bar(sde, log_alpha_bar: Tensor) -> Tensor:
    """The continuous VP time with ``m(t)² = ᾱ``: ``B(t) = -log ᾱ`` solved for ``t``."""
    delta = sde.beta_max - sde.beta_min
    return ((sde.beta_min**2 - 2 * delta * log_alpha_bar).sqrt() - sde.beta_min) / delta


class EpsModel:
    """diffusers' ε-prediction ``ε̂(x, τ) = -std(t) s(x, t)`` for a discrete VP timestep ``τ`` (any
    float in ``[0, N)``), ``t`` the continuous time with ``m(t)² = ᾱ_τ`` (``log ᾱ`` interpolated
    linearly), so the exact score of ``p_t`` is also the exact ε of the discrete chain."""

    def __init__(self, score_fn: Callable, sde, alphas_cumprod: Tensor):
        self.score = CountingScore(score_fn)
        self.sde = sde
        self.log_abar = alphas_cumprod.to(torch.float64).log()

    def __call__(self, x: Tensor, timestep) -> Tensor:
        tau = torch.as_tensor(timestep, dtype=torch.float64).clamp(0, len(self.log_abar) - 1)
        lo = tau.floor().long()
        hi = (lo + 1).clamp(max=len(self.log_abar) - 1)
        log_abar = self.log_abar[lo] + (tau - lo) * (self.log_abar[hi] - self.log_abar[lo])
        t = vp_time_of_alpha_bar(self.sde, log_abar).clamp(max=self.sde.T)
        t = t.expand(x.shape[0]).to(x.dtype)
        return -append_dims(self.sde.std(t), x.ndim) * self.score(x, t)


DIFFUSERS_VP = ["DDPMScheduler", "DDIMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler"]


def diffusers_vp_sample(diffusers, name: str, score_fn, sde, z: Tensor, steps: int,
                        generator: torch.Generator | None = None,
                        spacing: str | None = "trailing") -> tuple[Tensor, int]:
    """A diffusers VP scheduler (1000 training steps, linear betas ``β_min/N .. β_max/N``, as the
    continuous VP SDE) for ``steps`` inference steps from the standard normal ``z``. Sample
    clipping to [-1, 1] (DDPM/DDIM's image default) is off; ``"trailing"`` timestep spacing (by
    default) so the first step starts at the last training step, as scoresde's grids start at
    ``T``; ``spacing=None`` keeps the scheduler's own default."""
    n_train = 1000
    clip = {"clip_sample": False} if name in ("DDPMScheduler", "DDIMScheduler") else {}
    scheduler = getattr(diffusers, name)(
        num_train_timesteps=n_train, beta_start=sde.beta_min / n_train, beta_end=sde.beta_max / n_train,
        beta_schedule="linear", **({"timestep_spacing": spacing} if spacing else {}), **clip)
    scheduler.set_timesteps(steps)
    model = EpsModel(score_fn, sde, scheduler.alphas_cumprod)
    x = z * scheduler.init_noise_sigma
    extra = {"generator": generator} if name == "DDPMScheduler" else {}
    for tau in scheduler.timesteps:
        eps = model(scheduler.scale_model_input(x, tau), tau)
        x = scheduler.step(eps, tau, x, **extra).prev_sample
    return x, model.score.nfe


def diffusers_ve_sample(diffusers, score_fn, sde, z: Tensor, steps: int, eps: float,
                        generator: torch.Generator | None = None) -> tuple[Tensor, int]:
    """diffusers' ``ScoreSdeVeScheduler`` predictor (no corrector) for ``steps`` steps; its
    times are the continuous VE times, so the score is called at them directly; returns the
    last step's noise-free mean, as diffusers' pipeline does."""
    scheduler = diffusers.ScoreSdeVeScheduler(sigma_min=sde.sigma_min, sigma_max=sde.sigma_max,
                                              sampling_eps=eps)
    scheduler.set_timesteps(steps, sampling_eps=eps)
    scheduler.set_sigmas(steps, sde.sigma_min, sde.sigma_max, eps)
    score = CountingScore(score_fn)
    x, mean = z * sde.sigma_max, z
    for t in scheduler.timesteps:
        out = scheduler.step_pred(score(x, t.expand(x.shape[0]).to(x.dtype)), t, x, generator=generator)
        x, mean = out.prev_sample, out.prev_sample_mean
    return mean, score.nfe
