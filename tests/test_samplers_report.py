"""The samplers' non-finite check keeps a device flag that is read on the host every ``every``
steps and at the last one (on an accelerator every ``CHECK_EVERY`` steps, on the CPU every
step), and names the steps between which a state turned non-finite."""

from __future__ import annotations

import math
import re

import pytest
import torch

import scoresde as ss
from scoresde.samplers.common import CHECK_EVERY, Reporter


def _run(states: list[torch.Tensor], every: int) -> tuple[list[int], str | None]:
    """Report ``states`` as steps ``0..n-1`` at ``t_i = 1 - i / n``; the steps the callback saw and
    the error message, if one was raised."""
    seen: list[int] = []
    reporter = Reporter("x", len(states) - 1, callback=lambda step: seen.append(step["i"]), every=every)
    try:
        for i, x in enumerate(states):
            reporter(i, torch.tensor(1.0 - i / len(states)), x)
    except FloatingPointError as err:
        return seen, str(err)
    return seen, None


def test_flag_is_read_every_k_steps_and_at_the_last():
    """With ``every = 8`` on 40 steps: a NaN at step 5 raises at step 7 (the first read after it),
    naming steps 0..7, before step 7's callback; an inf at step 38 is caught at the last step."""
    states = [torch.zeros(3, 2) for _ in range(40)]
    assert _run(states, 8) == (list(range(40)), None)
    states[5] = torch.full((3, 2), math.nan)
    seen, error = _run(states, 8)
    assert seen == list(range(7))
    assert re.fullmatch(r"sampler 'x' produced a non-finite sample between step 0, t = 1 and step 7, "
                        r"t = 0\.825", error)
    states[5], states[38] = torch.zeros(3, 2), torch.full((3, 2), math.inf)
    seen, error = _run(states, 8)
    assert seen == list(range(39)) and "between step 32, t = 0.2 and step 39, t = 0.025" in error


def test_watch_folds_intermediate_states():
    """A non-finite intermediate state (Heun's Euler stage) is caught at the step's read even when
    the step's end state is finite; with the CPU default the watch itself raises."""
    reporter = Reporter("heun", 0, every=4)
    reporter.watch(0, torch.tensor(0.5), torch.tensor([[math.nan]]))
    with pytest.raises(FloatingPointError, match=r"'heun' produced a non-finite sample at step 0, t = 0\.5"):
        reporter(0, torch.tensor(0.5), torch.zeros(1, 1))
    with pytest.raises(FloatingPointError, match=r"at step 3, t = 0\.5"):
        Reporter("pc", 9).watch(3, torch.tensor(0.5), torch.tensor([[math.inf]]))


def test_default_period_is_one_on_the_cpu_and_check_every_elsewhere():
    cpu, meta = Reporter("x", 10), Reporter("x", 10)
    cpu.watch(0, torch.tensor(1.0), torch.zeros(2))
    meta.watch(0, torch.tensor(1.0), torch.zeros(2, device="meta"))
    assert (cpu.every, meta.every) == (1, CHECK_EVERY) and CHECK_EVERY > 1


def test_sampler_error_names_the_first_bad_step_on_the_cpu():
    """Euler–Maruyama on 40 uniform steps with a score that turns NaN below ``t = 0.5``: the first
    non-finite state is that of the first step evaluated at ``t_i < 0.5``, and on the CPU the
    error names that step (the oracle, which refuses a NaN input, is never called with one)."""
    sde, gm = ss.VPSDE(), ss.toy_mixture()
    exact = gm.score_fn(sde)

    def broken(x, t):
        return torch.where((t < 0.5)[:, None], math.nan, exact(x, t))

    steps = 40
    with pytest.raises(FloatingPointError) as err:
        ss.sample(broken, sde, (8, 2), "em", steps, generator=torch.Generator().manual_seed(0),
                  dtype=torch.float64)
    ts = ss.samplers.grids.uniform(sde, steps, ss.samplers.default_eps(sde))
    first_bad = next(i for i in range(steps) if ts[i] < 0.5)
    assert re.fullmatch(rf"sampler 'em' produced a non-finite sample at step {first_bad}, t = 0\.\d+",
                        str(err.value))
