"""The likelihood column of ``scoresde compare``: PF-ODE NLL of held-out points (bits/dim for
images), beside the oracle's exact value and the PF-ODE NLL of its exact score."""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from scoresde.analytic import GaussianMixture
from scoresde.compare.plan import CompareOptions, Defaults
from scoresde.data import Dataset
from scoresde.likelihood import bits_per_dim, log_likelihood
from scoresde.score import ScoreModel
from scoresde.sde import SDE


def likelihood(model: ScoreModel, sde_name: str, data: Dataset, oracle: GaussianMixture | None,
               d: Defaults, opts: CompareOptions) -> dict:
    """PF-ODE NLL of ``d.n_likelihood`` held-out points (nats, or bits/dim for images) and, with
    an oracle, the exact ``-log p_eps`` and the PF-ODE NLL of the exact score."""
    gen = torch.Generator(opts.device).manual_seed(opts.seed + 2)
    n, tol = d.n_likelihood, d.likelihood_tol
    tic = time.perf_counter()
    if data.num_levels is not None:
        res = bits_per_dim(model, model.sde, data.test_levels[:n].to(opts.device),
                           num_levels=data.num_levels, generator=gen, rtol=tol, atol=tol)
        return {"sde": sde_name, "unit": "bits/dim", "model": res.mean, "model_se": res.stderr,
                "nfe": res.nfe, "seconds": time.perf_counter() - tic}
    x = data.test[:n].to(opts.device)
    res = log_likelihood(model, model.sde, x, trace="exact", rtol=tol, atol=tol)
    nll = -res.logp.detach().cpu().double()
    record = {"sde": sde_name, "unit": "nats", "model": nll.mean().item(),
              "model_se": nll.std().item() / math.sqrt(n), "nfe": res.nfe,
              "seconds": time.perf_counter() - tic}
    if oracle is not None:
        record.update(oracle_nll(oracle, model.sde, x.cpu().double(), nll, tol))
    return record


def oracle_nll(oracle: GaussianMixture, sde: SDE, x: Tensor, model_nll: Tensor, tol: float) -> dict:
    """Exact ``-log p_eps(x)`` and the PF-ODE NLL with the exact score (its prior ``N(0, I)``
    or ``N(0, σ_max² I)``, as for the model), and the model's error against the exact value."""
    exact = -oracle.log_prob_t(x, 1e-5, sde)
    ode = -log_likelihood(oracle.score_fn(sde), sde, x, trace="exact", rtol=tol, atol=tol).logp
    return {"exact": exact.mean().item(), "oracle_ode": ode.mean().item(),
            "model_minus_exact_se": (model_nll - exact).std().item() / math.sqrt(len(x))}
