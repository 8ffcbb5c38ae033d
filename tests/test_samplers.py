"""Behaviour of ``ss.sample`` and the sampler functions: NFE, grids, reproducibility, shapes,
trajectories, and the errors for bad input. Statistical accuracy is in ``test_samplers_stats.py``
and the probability-flow ODE in ``test_samplers_ode.py``."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
from conftest import SDES

import scoresde as ss
from scoresde.samplers import grids
from scoresde.samplers.api import SAMPLERS

GM = ss.toy_mixture()
SMALL_STEPS = {"ald": 4, "ode": None, "heun": 4}



def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _counting(score_fn):
    """A score_fn that records every time it is called with, independent of the library."""
    calls = []

    def counted(x, t):
        calls.append(t.detach().clone())
        return score_fn(x, t)

    return counted, calls


def _run(sampler, sde_name="vp", steps=None, n=64, **kw):
    sde = SDES[sde_name]
    steps = SMALL_STEPS.get(sampler, 6) if steps is None else steps
    return ss.sample(GM.score_fn(sde), sde, (n, 2), sampler, steps, generator=_gen(),
                     dtype=torch.float64, **kw)


@pytest.mark.parametrize(
    ("sampler", "steps", "options", "expected"),
    [
        ("em", 7, {}, 7 + 1),
        ("reverse_diffusion", 7, {}, 7 + 1),
        ("ancestral", 7, {}, 7 + 1),
        ("pc", 7, {"n_corrector": 2}, 7 * 3 + 1),
        ("pc", 7, {"corrector": None}, 7 + 1),
        ("ddim", 7, {"eta": 0.5}, 7 + 1),
        ("heun", 7, {}, 2 * 7 + 1),
        ("ald", 7, {"n_steps_each": 3}, 7 * 3 + 1),
        ("ode", 7, {"method": "rk4"}, 4 * 7 + 1),
        ("ode", 7, {"method": "euler"}, 7 + 1),
    ],
)
def test_nfe_counts_every_score_call(sampler, steps, options, expected):
    """``info.nfe`` equals the number of calls an independent wrapper sees, and for fixed-step
    methods the algorithm's count: (score calls per step) x steps + 1 for the Tweedie step."""
    sde = SDES["vp"]
    score_fn, calls = _counting(GM.score_fn(sde))
    _, info = ss.sample(score_fn, sde, (16, 2), sampler, steps, generator=_gen(),
                        dtype=torch.float64, **options)
    assert info.nfe == len(calls) == expected


def test_nfe_adaptive_ode_and_no_denoise():
    """Adaptive dopri5 spends a data-dependent number of calls; the count still matches, and
    ``denoise=False`` drops exactly the one Tweedie evaluation."""
    sde = SDES["ve"]
    score_fn, calls = _counting(GM.score_fn(sde))
    _, info = ss.sample(score_fn, sde, (16, 2), "ode", generator=_gen(), dtype=torch.float64)
    assert info.nfe == len(calls) > 10
    _, info_nd = ss.sample(score_fn, sde, (16, 2), "ode", generator=_gen(), dtype=torch.float64,
                           denoise=False)
    assert info_nd.nfe == info.nfe - 1


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_reproducible_and_seed_dependent(sampler):
    """The same generator seed gives bit-identical samples; another seed gives other samples
    (every sampler starts from ``sde.prior_sample``, so even deterministic ones change)."""
    sde_name = "ve" if sampler == "ancestral" else "subvp"
    a, _ = _run(sampler, sde_name)
    b, _ = _run(sampler, sde_name)
    assert torch.equal(a, b)
    sde = SDES[sde_name]
    c, _ = ss.sample(GM.score_fn(sde), sde, (64, 2), sampler, SMALL_STEPS.get(sampler, 6),
                     generator=_gen(1), dtype=torch.float64)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_image_shapes_and_float32(sampler):
    """``(batch, c, h, w)`` samples in float32 keep shape, dtype and device; nothing is 2-D only."""
    gm = ss.GaussianMixture(torch.zeros(2, 4) + torch.tensor([[1.0], [-1.0]]), [0.5, 0.3],
                            event_shape=(1, 2, 2))
    sde = SDES["vp"]
    x, info = ss.sample(gm.score_fn(sde), sde, (8, 1, 2, 2), sampler, SMALL_STEPS.get(sampler, 5),
                        generator=_gen(), dtype=torch.float32, device="cpu")
    assert x.shape == (8, 1, 2, 2) and x.dtype == torch.float32 and x.device.type == "cpu"
    assert info.ts.dtype == torch.float32
    assert torch.isfinite(x).all()


def test_trajectory_and_time_grid():
    """The trajectory starts at the prior sample, has one state per step plus the denoised
    output, and ends at the returned sample; the grid runs from T down to eps."""
    x, info = _run("em", "vp", steps=5, return_trajectory=True, eps=2e-3)
    prior = SDES["vp"].prior_sample((64, 2), generator=_gen(), dtype=torch.float64)
    assert info.trajectory.shape == (5 + 2, 64, 2)
    assert torch.equal(info.trajectory[0], prior)
    assert torch.equal(info.trajectory[-1], x)
    assert info.ts[0] == 1.0 and info.ts[-1] == pytest.approx(2e-3) and len(info.ts) == 6
    assert bool((info.ts.diff() < 0).all())
    _, info_nd = _run("ald", "vp", steps=3, return_trajectory=True, denoise=False)
    assert info_nd.trajectory.shape == (1 + 3, 64, 2)
    assert _run("em")[1].trajectory is None


def test_progress_bar(capsys):
    """``progress=True`` draws a tqdm bar (on stderr) over the steps."""
    _run("em", steps=3, progress=True)
    assert "em" in capsys.readouterr().err


def test_callback_of_plain_sampler_function():
    """A sampler called directly reports every step to its callback, in order, at ``ts[1:]``."""
    sde = SDES["vp"]
    ts = grids.uniform(sde, 4, 1e-3).to(torch.float64)
    seen = []
    x = sde.prior_sample((8, 2), generator=_gen(), dtype=torch.float64)
    ss.samplers.ddim(GM.score_fn(sde), sde, x, ts, callback=seen.append)
    assert [s["i"] for s in seen] == [0, 1, 2, 3]
    assert torch.equal(torch.stack([s["t"] for s in seen]), ts[1:])


@pytest.mark.parametrize("sde_name", list(SDES))
def test_grids(sde_name):
    """Each grid runs from T to eps exactly and decreases; ``karras`` is Karras et al.'s
    ρ-ramp in σ̃ = std/m and ``geometric_std`` is geometric in std (checked through the SDE)."""
    sde = SDES[sde_name]
    for grid in (grids.uniform(sde, 10, 1e-3), grids.karras(sde, 10, 1e-3),
                 grids.geometric_std(sde, 10, 1e-3)):
        assert grid[0] == sde.T and grid[-1] == 1e-3 and bool((grid.diff() < 0).all())
    ratio = sde.std(grids.karras(sde, 10, 1e-3)) / sde.mean_coef(grids.karras(sde, 10, 1e-3))
    ramp = ratio ** (1 / 7)
    torch.testing.assert_close(ramp.diff(), ramp.diff()[:1].expand(10), rtol=1e-9, atol=0)
    log_std = sde.std(grids.geometric_std(sde, 10, 1e-3)).log()
    torch.testing.assert_close(log_std.diff(), log_std.diff()[:1].expand(9), rtol=1e-9, atol=0)


def test_ve_geometric_levels_are_smld_sigmas():
    """For VE the NCSN levels from ``geometric_std`` with eps -> 0 are SMLD's geometric σ_i."""
    sde = ss.VESDE(0.01, 50.0)
    ts = grids.geometric_std(sde, 8, 1e-9)
    torch.testing.assert_close(sde.std(ts).flip(0), sde.smld_sigmas(8), rtol=1e-7, atol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sampler": "leapfrog"}, r"unknown sampler 'leapfrog'; valid: \['ald', 'em'"),
        ({"sampler": "em", "snr": 0.1}, r"unknown option\(s\) \['snr'\] for sampler 'em'"),
        ({"sampler": "pc", "predictor": "rk9"}, r"unknown predictor 'rk9'; valid:"),
        ({"sampler": "pc", "corrector": "hmc"}, r"unknown corrector 'hmc'; valid:"),
        ({"sampler": "pc", "predictor": None, "corrector": None}, "cannot both be None"),
        ({"sampler": "ode", "method": "rk45"}, r"unknown ODE method 'rk45'; valid: adaptive"),
        ({"sampler": "ode", "method": "rk4", "steps": None}, "fixed-grid: pass steps"),
        ({"sampler": "em", "grid": "cosine"}, r"unknown grid 'cosine'; valid:"),
        ({"sampler": "em", "steps": 0}, "steps must be an integer >= 1"),
        ({"sampler": "em", "steps": 2.5}, "steps must be an integer >= 1"),
        ({"sampler": "em", "eps": 0.0}, r"eps must lie in \(0, T\)"),
        ({"sampler": "ode", "eps": 1.0}, r"eps must lie in \(0, T\)"),
        ({"sampler": "ddim", "eta": -1.0}, "eta must be >= 0"),
        ({"sampler": "ald", "n_steps_each": 0}, "n_steps_each must be an integer >= 1"),
        ({"sampler": "pc", "snr": 0.0}, "snr must be > 0"),
        ({"sampler": "heun", "rho": -7.0}, "rho must be > 0"),
        ({"sampler": "heun", "s_churn": -1.0}, "s_churn must be finite and >= 0"),
        ({"sampler": "heun", "s_noise": float("nan")}, "s_noise must be finite and >= 0"),
    ],
)
def test_bad_input_raises_value_error(kwargs, match):
    """Unknown names list the valid choices; out-of-range numbers name the argument."""
    sde = SDES["vp"]
    kwargs = {"steps": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        ss.sample(GM.score_fn(sde), sde, (4, 2), generator=_gen(), **kwargs)


@pytest.mark.parametrize("kwargs", [{"sampler": "ancestral"}, {"sampler": "pc", "predictor": "ancestral"}])
def test_ancestral_refuses_sub_vp(kwargs):
    """Ancestral sampling follows the DDPM / SMLD discrete chains; sub-VP has none."""
    sde = SDES["subvp"]
    with pytest.raises(ValueError, match="SubVPSDE has no such chain"):
        ss.sample(GM.score_fn(sde), sde, (4, 2), steps=3, generator=_gen(), **kwargs)


def test_bad_shape_and_generator_device():
    sde = SDES["vp"]
    with pytest.raises(ValueError, match="shape must be"):
        ss.sample(GM.score_fn(sde), sde, (4,), "em", 3)
    with pytest.raises(ValueError, match="generator is on cpu but device is meta"):
        ss.sample(GM.score_fn(sde), sde, (4, 2), "em", 3, generator=_gen(), device="meta")


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_non_finite_state_raises_floating_point_error(sampler):
    """A score that turns NaN below t = 0.5 makes every sampler stop with a FloatingPointError
    naming the sampler, the step index and t, instead of returning NaNs."""
    sde = SDES["ve"] if sampler == "ancestral" else SDES["vp"]
    exact = GM.score_fn(sde)

    def broken(x, t):
        return torch.where((t < 0.5)[:, None], math.nan, exact(x, t))

    pattern = rf"sampler '{re.escape(sampler)}.*(step|evaluation) \d+, t = 0\.\d+"
    with pytest.raises(FloatingPointError, match=pattern):
        ss.sample(broken, sde, (8, 2), sampler, SMALL_STEPS.get(sampler, 6), generator=_gen(),
                  dtype=torch.float64)


def test_default_eps_and_snr():
    """Sampling stops at 1e-3 for VP / sub-VP and 1e-5 for VE; PC's snr is 0.16 / 0.075."""
    from scoresde.samplers.pc import default_snr

    assert [ss.samplers.default_eps(s) for s in SDES.values()] == [1e-3, 1e-3, 1e-5]
    assert [default_snr(s) for s in SDES.values()] == [0.16, 0.16, 0.075]


def _edm_stochastic_heun(denoiser, sigmas, x, churn, noise):
    """Karras et al. (2022), Algorithm 2, written from the paper in EDM's own variables (VE:
    ``x`` at noise level ``σ``), ``noise[i]`` the fresh ``ε_i``; independent of the library."""
    gamma = min(churn / (len(sigmas) - 1), math.sqrt(2) - 1)
    for i, (s, s_next) in enumerate(itertools.pairwise(sigmas)):
        s_hat = min(s * (1 + gamma), sigmas[0])
        x_hat = x + math.sqrt(s_hat**2 - s**2) * noise[i]
        d = (x_hat - denoiser(x_hat, s_hat)) / s_hat
        x_next = x_hat + (s_next - s_hat) * d
        d_next = (x_next - denoiser(x_next, s_next)) / s_next
        x = x_hat + (s_next - s_hat) * (d + d_next) / 2
    return x


def test_heun_churn_is_edm_algorithm_2():
    """On VE (``x = y``, ``σ̃ = σ``) ``heun`` with ``s_churn`` equals Algorithm 2 evaluated
    independently with the denoiser ``D(x, σ) = x + σ² s(x, σ⁻¹(σ))``, given the same noise
    (drawn from a generator seeded alike, one draw per step in order); ``s_churn = 0`` draws
    nothing, so it is reproducible without a generator."""
    sde, n, steps, churn = SDES["ve"], 16, 6, 2.0
    score = GM.score_fn(sde)
    ts = grids.karras(sde, steps, 1e-3).to(torch.float64)
    x0 = sde.prior_sample((n, 2), generator=_gen(3), dtype=torch.float64)
    got = SAMPLERS["heun"].fn(score, sde, x0, ts, s_churn=churn, generator=_gen(4))
    g = _gen(4)
    noise = [torch.randn((n, 2), generator=g, dtype=torch.float64) for _ in range(steps)]
    sigmas = sde.ratio(ts).tolist()

    def denoiser(x, sigma):
        t = sde.time_of_ratio(sigma).expand(n)
        return x + sigma**2 * score(x, t)

    want = _edm_stochastic_heun(denoiser, sigmas, x0, churn, noise)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    plain = SAMPLERS["heun"].fn(score, sde, x0, ts)
    assert (got - plain).abs().max() > 1e-3
    torch.testing.assert_close(SAMPLERS["heun"].fn(score, sde, x0, ts, s_churn=0.0), plain, rtol=0, atol=0)
