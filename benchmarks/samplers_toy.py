"""Every sampler at its defaults on the 2-D toy mixture with exact scores: NFE, fit, wall time.

Run: ``python benchmarks/samplers_toy.py [n]``. Prints one row per (SDE, sampler): the NFE
counted by ``ss.sample``, the χ² of the component weights (2 dof; ~2 for an exact sampler), the
largest |z| of the component means / variances (~2 for an exact sampler at n = 3,000) and the
wall time on this machine. The PC row uses the "ald" corrector in 2-D, where the per-sample
Langevin corrector is unstable (see ``scoresde.samplers.langevin.langevin_corrector``).
"""

from __future__ import annotations

import sys
import time

import torch

import scoresde as ss

SDES = {"VP": ss.VPSDE(), "sub-VP": ss.SubVPSDE(), "VE": ss.VESDE(0.01, 50.0)}
OPTIONS = {"pc": {"corrector": "ald"}}


def main(n: int = 3000) -> None:
    torch.set_num_threads(1)  # small tensors; two threads on a loaded 2-core machine ran 17x slower
    gm = ss.toy_mixture()
    print(f"{'SDE':7s} {'sampler':18s} {'NFE':>5s} {'chi2':>7s} {'max|z|':>7s} {'time/s':>7s}")
    for sde_name, sde in SDES.items():
        for sampler in ss.samplers.SAMPLERS:
            if sampler == "ancestral" and sde_name == "sub-VP":
                continue
            start = time.perf_counter()
            x, info = ss.sample(gm.score_fn(sde), sde, (n, 2), sampler,
                                generator=torch.Generator().manual_seed(0), dtype=torch.float64,
                                **OPTIONS.get(sampler, {}))
            elapsed = time.perf_counter() - start
            st = ss.mixture_stats(gm, x)
            print(f"{sde_name:7s} {sampler:18s} {info.nfe:5d} {st.chi2:7.2f} {st.max_abs_z:7.2f} "
                  f"{elapsed:7.2f}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000)
