"""Every sampler at its defaults on the 2-D toy mixture with exact scores, and the PC corrector's
two step-size rules side by side.

    python benchmarks/samplers_toy.py [--quick] [--n 3000]   # results/samplers_toy[_quick].json

``defaults``: one row per (SDE, sampler) with the NFE counted by ``ss.sample``, the χ² of the
component weights (2 dof; ~2 for an exact sampler), the largest |z| of the component means and
variances (~2 for an exact sampler at n = 3,000) and the wall time. ``pc_norms``: predictor–corrector
with the Langevin corrector at ``norms="batch"`` (the default: batch means of ‖z‖ and ‖s‖ in the
step size) against ``norms="sample"`` (per-sample norms), 250 steps, default snr, same seed.
``--quick`` runs n = 300 and 20 steps per sampler, only to keep the script working.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import scoresde as ss

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, metadata, write_json

SDES = {"VP": ss.VPSDE(), "sub-VP": ss.SubVPSDE(), "VE": ss.VESDE(0.01, 50.0)}


def run(sde, sampler: str, n: int, steps: int | None, **options) -> dict:
    """One seeded ``ss.sample`` run on the exact mixture score: NFE, χ², max |z|, seconds."""
    gm = ss.toy_mixture()
    start = time.perf_counter()
    x, info = ss.sample(gm.score_fn(sde), sde, (n, 2), sampler, steps,
                        generator=torch.Generator().manual_seed(0), dtype=torch.float64, **options)
    elapsed = time.perf_counter() - start
    st = ss.mixture_stats(gm, x)
    return {"nfe": info.nfe, "chi2": st.chi2, "max_abs_z": st.max_abs_z, "seconds": elapsed}


def defaults(n: int, steps: int | None) -> list[dict]:
    rows = []
    for sde_name, sde in SDES.items():
        for sampler in ss.samplers.SAMPLERS:
            if sampler == "ancestral" and sde_name == "sub-VP":
                continue
            rows.append({"sde": sde_name, "sampler": sampler,
                         **run(sde, sampler, n, None if sampler == "ode" else steps)})
            print(rows[-1], flush=True)
    return rows


def pc_norms(n: int, steps: int) -> list[dict]:
    rows = []
    for sde_name, sde in SDES.items():
        for norms in ("batch", "sample"):
            rows.append({"sde": sde_name, "norms": norms, "steps": steps,
                         **run(sde, "pc", n, steps, norms=norms)})
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # small tensors; two threads on a loaded 2-core machine ran 17x slower
    n, steps = (300, 20) if args.quick else (args.n, None)
    payload = {**metadata(), "n": n, "defaults": defaults(n, steps),
               "pc_norms": pc_norms(n, 20 if args.quick else 250)}
    write_json("samplers_toy", payload, args.quick, args.results)


if __name__ == "__main__":
    main()
