"""``sample``: one entry point to every sampler, with defaults per SDE, NFE and trajectories."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scoresde.samplers import grids
from scoresde.samplers.common import CountingScore, ScoreFn, check_finite, tweedie
from scoresde.samplers.ddim import ddim
from scoresde.samplers.fast import fast_choice
from scoresde.samplers.heun import heun
from scoresde.samplers.langevin import annealed_langevin
from scoresde.samplers.multistep import dpmpp_2m, dpmpp_3m, unipc
from scoresde.samplers.ode import FIXED_METHODS, check_method, probability_flow
from scoresde.samplers.pc import predictor_corrector
from scoresde.samplers.sde_solvers import ancestral, euler_maruyama, reverse_diffusion


@dataclass(frozen=True)
class _Spec:
    """A sampler function, its default grid and its default number of steps."""

    fn: Callable
    grid: str
    steps: int | None


SAMPLERS = {
    "ald": _Spec(annealed_langevin, "geometric_std", 800),
    "em": _Spec(euler_maruyama, "uniform", 1000),
    "reverse_diffusion": _Spec(reverse_diffusion, "uniform", 1000),
    "ancestral": _Spec(ancestral, "uniform", 1000),
    "pc": _Spec(predictor_corrector, "uniform", 1000),
    "ode": _Spec(probability_flow, "uniform", None),
    "ddim": _Spec(ddim, "uniform", 100),
    "heun": _Spec(heun, "karras", 40),
    "dpm++2m": _Spec(dpmpp_2m, "logsnr", 20),
    "dpm++3m": _Spec(dpmpp_3m, "logsnr", 20),
    "unipc": _Spec(unipc, "logsnr", 20),
}
GRIDS = {
    "uniform": grids.uniform,
    "karras": grids.karras,
    "geometric_std": grids.geometric_std,
    "logsnr": grids.logsnr,
}


@dataclass
class SampleInfo:
    """What a :func:`sample` run spent and visited.

    ``nfe``: score evaluations counted by wrapping ``score_fn`` (the denoising step included);
    ``ts``: the time grid (noise levels for ``"ald"``); ``trajectory``: with
    ``return_trajectory=True``, the prior sample, the state after each step and, with ``denoise``,
    the denoised output, stacked along a new first dimension.
    """

    sampler: str
    nfe: int
    ts: Tensor
    eps: float
    options: dict = field(default_factory=dict)
    trajectory: Tensor | None = None


def default_eps(sde) -> float:
    """Where sampling stops, ``sde.sampling_eps``: ``1e-5`` for VE, ``1e-3`` for VP and sub-VP."""
    return sde.sampling_eps


def sample(
    score_fn: ScoreFn,
    sde,
    shape: tuple[int, ...],
    sampler: str = "pc",
    steps: int | None = None,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    eps: float | None = None,
    denoise: bool = True,
    progress: bool = False,
    grid: str | None = None,
    return_trajectory: bool = False,
    **options,
) -> tuple[Tensor, SampleInfo]:
    """Draw ``x ~ p_0`` of ``shape`` from the prior ``x_T ~ sde.prior_sample`` with ``sampler``.

    Samplers (defaults: steps, grid): ``"ald"`` annealed Langevin (800 levels x ``n_steps_each``
    = 5, geometric std), ``"em"``, ``"reverse_diffusion"``, ``"ancestral"``, ``"pc"`` (1000,
    uniform), ``"ode"`` (adaptive ``dopri5``; a fixed-grid ``method`` needs ``steps``), ``"ddim"``
    (100, uniform), ``"heun"`` (40, EDM/Karras), the multistep ODE solvers ``"dpm++2m"``,
    ``"dpm++3m"``, ``"unipc"`` (20, log-SNR; ``order`` for UniPC, ``lower_order_final``) and
    ``"fast"``, the measured best of those per SDE (:mod:`scoresde.samplers.fast`; its steps,
    grid, ``eps`` and knobs are defaults that explicit arguments override). ``grid`` overrides the grid (one
    of :data:`GRIDS`); ``options`` go to the sampler function (e.g. ``predictor``, ``corrector``,
    ``snr``, ``n_corrector`` for ``"pc"``; ``method``, ``rtol``, ``atol`` for ``"ode"``; ``eta``
    for ``"ddim"``) or to the grid (``rho``). ``eps`` defaults to :func:`default_eps`. With
    ``denoise``, the last state is replaced by Tweedie's ``(x + std(eps)^2 s(x, eps)) / m(eps)``.

    Returns ``(x, info)`` (:class:`SampleInfo`). Raises ``ValueError`` on bad arguments and
    ``FloatingPointError`` if a state turns non-finite.
    """
    if sampler == "fast":
        sampler, steps, grid, eps, options = _fast(sde, steps, grid, eps, options)
    spec = _lookup("sampler", sampler, SAMPLERS)
    grid_fn = _lookup("grid", spec.grid if grid is None else grid, GRIDS)
    knobs, grid_knobs = _split_options(sampler, spec.fn, grid_fn, options)
    eps = default_eps(sde) if eps is None else eps
    device = _device(generator, device)
    x = sde.prior_sample(_check_shape(shape), generator=generator, device=device, dtype=dtype)
    ts = _times(sampler, spec, grid_fn, sde, steps, eps, grid_knobs, knobs).to(x.device, x.dtype)
    counted = CountingScore(score_fn)
    states = [x] if return_trajectory else None
    total = len(ts) if sampler == "ald" else len(ts) - 1
    with tqdm(total=total, disable=not progress, desc=sampler) as bar:

        def callback(step: dict) -> None:
            bar.update(1)
            if states is not None:
                states.append(step["x"])

        x = spec.fn(counted, sde, x, ts, generator=generator, callback=callback, **knobs)
    if denoise:
        x = tweedie(counted, sde, x, ts[-1])
        check_finite(sampler, total, ts[-1], x)
        if states is not None:
            states.append(x)
    trajectory = None if states is None else torch.stack(states)
    info = SampleInfo(sampler, counted.nfe, ts, eps, {**grid_knobs, **knobs}, trajectory)
    return x, info


def _fast(sde, steps, grid, eps, options):
    """Resolve ``sampler="fast"`` to its measured choice, explicit arguments taking precedence."""
    c = fast_choice(sde)
    steps = c.steps if steps is None else steps
    grid = c.grid if grid is None else grid
    return c.sampler, steps, grid, c.eps if eps is None else eps, {**c.options, **options}


def _lookup(name: str, key: str, table: dict):
    if key not in table:
        raise ValueError(f"unknown {name} {key!r}; valid: {list(table)}")
    return table[key]


def _keywords(fn: Callable, skip: set[str]) -> set[str]:
    params = inspect.signature(fn).parameters.values()
    return {p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in skip}


def _split_options(sampler: str, fn: Callable, grid_fn: Callable, options: dict):
    fn_keys = _keywords(fn, {"generator", "callback"})
    grid_keys = {p for p in inspect.signature(grid_fn).parameters if p not in ("sde", "steps", "eps")}
    unknown = set(options) - fn_keys - grid_keys
    if unknown:
        raise ValueError(
            f"unknown option(s) {sorted(unknown)} for sampler {sampler!r}; "
            f"valid: {sorted(fn_keys | grid_keys)}"
        )
    knobs = {k: v for k, v in options.items() if k in fn_keys}
    return knobs, {k: v for k, v in options.items() if k in grid_keys}


def _times(sampler, spec, grid_fn, sde, steps, eps, grid_knobs, knobs) -> Tensor:
    if sampler == "ode" and steps is None:
        method = knobs.get("method", "dopri5")
        check_method(method)
        if method in FIXED_METHODS:
            raise ValueError(f"ODE method {method!r} is fixed-grid: pass steps (an integer >= 1)")
        grids.check_grid_args(sde, 1, eps)
        return torch.tensor([sde.T, eps], dtype=torch.float64)
    return grid_fn(sde, spec.steps if steps is None else steps, eps, **grid_knobs)


def _device(generator: torch.Generator | None, device) -> torch.device | None:
    if generator is None:
        return None if device is None else torch.device(device)
    if device is not None and torch.device(device).type != generator.device.type:
        raise ValueError(f"generator is on {generator.device} but device is {device}")
    return generator.device if device is None else torch.device(device)


def _check_shape(shape) -> tuple[int, ...]:
    shape = tuple(shape)
    if len(shape) < 2 or not all(isinstance(s, int) and s >= 1 for s in shape):
        raise ValueError(f"shape must be (batch, ...) of positive integers; got {shape}")
    return shape
