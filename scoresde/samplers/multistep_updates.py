"""The published multistep updates of the probability-flow ODE in half log-SNR time, one short
function each, over tensors and Python floats.

One step goes from ``s = t_i`` to ``t = t_{i+1}`` (``t`` nearer 0). ``α = m(t)`` and ``σ = std(t)``
are the marginal's coefficients, ``λ = log(α / σ)`` the half log-SNR, ``h = λ_t - λ_s > 0``, and
``D`` Tweedie's data prediction at a grid point. Arguments: ``x`` the state at ``s``,
``alpha_t = α_t``, ``sigma_ratio = σ_t / σ_s``; the data predictions ``ds`` and log-SNR steps
``hs`` newest first: ``ds[j] = D_{s-j}``, ``hs[0] = h`` and ``hs[j] = h_{-j} = λ_{s-j+1} - λ_{s-j}``,
the step ``j`` steps back. Each update is also the first-order step with ``D_s`` replaced by a
combination of the predictions; the docstrings give both forms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def ddim_step(x: Tensor, d: Tensor, h: float, alpha_t: float, sigma_ratio: float) -> Tensor:
    """The first-order step, DPM-Solver++(1) = DDIM (Lu et al. 2022):

        x_t = (σ_t / σ_s) x_s - α_t (e^{-h} - 1) D.
    """
    return torch.add(sigma_ratio * x, d, alpha=-alpha_t * math.expm1(-h))


def dpmpp_1_step(x: Tensor, ds: list[Tensor], hs: list[float], alpha_t: float, sigma_ratio: float) -> Tensor:
    """DPM-Solver++(1): :func:`ddim_step` with ``D = D_s``."""
    return ddim_step(x, ds[0], hs[0], alpha_t, sigma_ratio)


def dpmpp_2m_step(x: Tensor, ds: list[Tensor], hs: list[float], alpha_t: float, sigma_ratio: float) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), from ``D_s = ds[0]``, ``D_{s-1} = ds[1]``:

        r = h_{-1} / h,    D = (1 + 1/(2r)) D_s - 1/(2r) D_{s-1} = D_s + (D_s - D_{s-1}) / (2r),
        x_t = (σ_t / σ_s) x_s - α_t (e^{-h} - 1) D.
    """
    (d0, d1), (h, h1) = ds, hs
    r = h1 / h
    return ddim_step(x, torch.add(d0, d0 - d1, alpha=0.5 / r), h, alpha_t, sigma_ratio)


def dpmpp_3m_step(x: Tensor, ds: list[Tensor], hs: list[float], alpha_t: float, sigma_ratio: float) -> Tensor:
    """DPM-Solver++(3M), the third-order multistep update of Lu et al.'s (2022) reference code,
    from ``D_s, D_{s-1}, D_{s-2}``:

        r_0 = h_{-1} / h,  r_1 = h_{-2} / h,
        D1_0 = (D_s - D_{s-1}) / r_0,  D1_1 = (D_{s-1} - D_{s-2}) / r_1,
        D1 = D1_0 + r_0 / (r_0 + r_1) (D1_0 - D1_1),  D2 = (D1_0 - D1_1) / (r_0 + r_1),
        φ_1 = e^{-h} - 1,  φ_2 = φ_1 / h + 1,  φ_3 = φ_2 / h - 1/2,
        x_t = (σ_t / σ_s) x_s - α_t φ_1 D_s + α_t φ_2 D1 - α_t φ_3 D2,

    that is :func:`ddim_step` with ``D = D_s - (φ_2 / φ_1) D1 + (φ_3 / φ_1) D2``.
    """
    (d0, d1, d2), (h, h1, h2) = ds, hs
    r0, r1 = h1 / h, h2 / h
    d1_0, d1_1 = (d0 - d1) / r0, (d1 - d2) / r1
    first, second = torch.add(d1_0, d1_0 - d1_1, alpha=r0 / (r0 + r1)), (d1_0 - d1_1) / (r0 + r1)
    phi1 = math.expm1(-h)
    phi2 = phi1 / h + 1
    phi3 = phi2 / h - 0.5
    d = torch.add(torch.add(d0, first, alpha=-phi2 / phi1), second, alpha=phi3 / phi1)
    return ddim_step(x, d, h, alpha_t, sigma_ratio)


DPMPP_STEPS = {1: dpmpp_1_step, 2: dpmpp_2m_step, 3: dpmpp_3m_step}


def unipc_rhos(rs: list[float], h: float) -> list[float]:
    """UniPC's weights ``ρ`` for the points at offsets ``r_m`` (Zhao et al. 2023, ``B(h) = e^{-h} - 1``,
    their "bh2" variant, in data prediction, so ``z = -h``): the ``p × p`` solve

        R ρ = g,   R_{jm} = r_m^{j-1},   g_j = j! z φ_{j+1}(z) / B(h),   j, m = 1..p,

    with ``φ_1(z) = (e^z - 1) / z`` and ``φ_{j+1}(z) = (φ_j(z) - 1/j!) / z``, so
    ``z φ_2 = φ_1 - 1`` and ``z φ_{j+2} = z φ_{j+1} / z - 1/(j+1)!``.
    """
    z = -h
    z_phi, g, factorial = math.expm1(z) / z - 1, [], 1.0
    for j in range(1, len(rs) + 1):
        g.append(z_phi * factorial / math.expm1(z))
        factorial *= j + 1
        z_phi = z_phi / z - 1 / factorial
    R = torch.tensor([[r ** (j - 1) for r in rs] for j in range(1, len(rs) + 1)], dtype=torch.float64)
    return torch.linalg.solve(R, torch.tensor(g, dtype=torch.float64)).tolist()


def unipc_step(
    x: Tensor, d: Tensor, points: list[tuple[Tensor, float]], h: float, alpha_t: float, sigma_ratio: float
) -> Tensor:
    """UniPC's update from ``D_s = d`` with the points ``(D_m, r_m)``, ``r_m = (λ_m - λ_s) / h``
    (Zhao et al. 2023, ``B(h) = e^{-h} - 1``, data prediction):

        x_t = (σ_t / σ_s) x_s - α_t (e^{-h} - 1) D_s - α_t B(h) Σ_m ρ_m (D_m - D_s) / r_m,

    ``ρ`` from :func:`unipc_rhos`. The predictor UniP-p takes the ``p - 1`` earlier grid points
    (``r_m < 0``); the corrector UniC-p takes those and ``(D_t, 1)``, the prediction at the
    predictor's ``x_t``. As ``B(h) = e^{-h} - 1`` this is :func:`ddim_step` with
    ``D = D_s + Σ_m ρ_m (D_m - D_s) / r_m``.
    """
    rhos = unipc_rhos([r for _, r in points], h) if points else []
    corrected = d
    for (d_m, r_m), rho in zip(points, rhos, strict=True):
        corrected = torch.add(corrected, d_m - d, alpha=rho / r_m)
    return ddim_step(x, corrected, h, alpha_t, sigma_ratio)
