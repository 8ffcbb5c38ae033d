"""Every measured figure quoted in the README and the docs is the one its results file records.

Each row of ``QUOTES`` is ``(page, quote, source, extract, fmt)``: ``quote`` is the text exactly as
it stands in ``page`` (line breaks count as spaces); ``source`` the results file it comes from
(``benchmarks/results/<file>.json``, or a tuple of them; a path with a ``/`` is a test module whose
module-level constant is quoted); ``extract`` reads the value(s) from the loaded file(s); ``fmt``
formats them as the page rounds them. The test checks that the quote is on the page, that the
formatted value is part of the quote, and that the quote's paragraph names every source file
(for a table or a list: the paragraph just before or after it, its caption). The large tables
are rebuilt row by row from their JSON by the ``test_*_table*`` functions at the end, and the
mutation counts of ``docs/testing.md`` are checked against the page's own list of mutants.

No torch work: only ``json`` and the text of the pages.
"""

from __future__ import annotations

import ast
import fnmatch
import itertools
import json
import math
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


# ---------------------------------------------------------------------------------------------
# reading the pages and the results files


@cache
def page_text(page: str) -> str:
    return (ROOT / page).read_text()


def squash(text: str) -> str:
    """Whitespace runs (line breaks included) as one space, so a quote may span lines."""
    return re.sub(r"\s+", " ", text).strip()


@cache
def blocks(page: str) -> tuple[str, ...]:
    """The page's paragraphs, tables and lists: text between blank lines, whitespace squashed."""
    return tuple(squash(b) for b in re.split(r"\n\s*\n", page_text(page)) if b.strip())


def named_files(text: str) -> set[str]:
    """Base names of the ``*.json`` / ``*.py`` files a text names, ``{a,b}`` braces expanded."""
    names = set()
    for token in re.findall(r"[\w.{},*/-]+\.(?:\{[\w,]+\}|json|py)", text):
        parts = [p.split(",") if i % 2 else [p] for i, p in enumerate(re.split(r"[{}]", token))]
        names |= {Path("".join(combo)).name for combo in itertools.product(*parts)}
    return names


def names_source(page: str, quote: str, files: tuple[str, ...]) -> list[str]:
    """The files of ``files`` that the quote's paragraph does not name (for a table or a list:
    nor the paragraphs just before and after it, its caption)."""
    bs = blocks(page)
    i = next(k for k, b in enumerate(bs) if squash(quote) in b)
    captioned = bs[i].startswith(("|", "* "))
    named = named_files(" ".join(bs[max(i - 1, 0): i + 2]) if captioned else bs[i])
    return [f for f in files if not any(fnmatch.fnmatch(Path(f).name, n) for n in named)]


@cache
def load(source: str) -> Any:
    """A results JSON, or (for a path with a ``/``) a test module's literal constants."""
    if "/" not in source:
        return json.loads((RESULTS / source).read_text())
    constants = {}
    for node in ast.parse((ROOT / source).read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # a call or a name: not a quotable constant
                pass
    return constants


# ---------------------------------------------------------------------------------------------
# extracting and formatting values


def one(rows: list[dict], **match) -> dict:
    """The single row whose fields equal ``match``."""
    hits = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    assert len(hits) == 1, (match, len(hits))
    return hits[0]


def span(values) -> tuple[float, float]:
    values = list(values)
    return min(values), max(values)


def same(values, digits: int) -> float:
    """The common value of ``values`` rounded to ``digits`` decimals (they must all agree)."""
    rounded = {round(v, digits) for v in values}
    assert len(rounded) == 1, rounded
    return rounded.pop()


def sci(x: float, digits: int = 1, sign: bool = False) -> str:
    """``x`` as the pages print it: ``6.382e-2``, ``−2.9e-4`` (Unicode minus), ``+4.7e-5``."""
    mantissa, exponent = f"{x:.{digits}e}".split("e")
    text = f"{mantissa}e{int(exponent)}"
    if sign and x > 0:
        text = "+" + text
    return text.replace("-", "−", 1) if x < 0 else text


def z2(z: float) -> str:
    """A max |z| in two significant figures, as the sampler tables print it: 4.4, 11, 3946."""
    return f"{z:.1f}" if round(z, 1) < 10 else f"{z:.0f}"


# compare_toy.json: the default ``scoresde compare`` run, trained and exact ("oracle") score
DETERMINISTIC = ("ddim", "heun", "dpm++2m", "dpm++3m", "unipc", "ode_rk4")


def toy(d: dict, sampler: str, sde: str, budget: int, score: str = "oracle") -> dict:
    return one(d["runs"], sampler=sampler, sde=sde, budget=budget, score=score)


def oz(d: dict, sampler: str, sde: str, budget: int) -> str:
    """The exact-score run's max |z| as docs/samplers.md prints it."""
    return z2(toy(d, sampler, sde, budget)["max_abs_z"])


def ratios(d: dict, sdes: tuple[str, ...], budget: int = 100) -> list[float]:
    """Trained / exact-score sliced W2 of the deterministic samplers."""
    return [toy(d, s, sde, budget, "trained")["sliced_w2"] / toy(d, s, sde, budget)["sliced_w2"]
            for s in DETERMINISTIC for sde in sdes]


def w2(d: dict, sdes: tuple[str, ...], score: str, budget: int = 100) -> list[float]:
    return [toy(d, s, sde, budget, score)["sliced_w2"] for s in DETERMINISTIC for sde in sdes]


def nll(d: dict, sde: str) -> tuple:
    r = one(d["likelihood"], sde=sde)
    return r["model"], r["model_se"], r["exact"], r["oracle_ode"], r["nfe"]


def paired(d: dict) -> tuple:
    rows = [one(d["likelihood"], sde=sde) for sde in ("vp", "subvp", "ve")]
    return tuple(x for r in rows for x in (r["model"] - r["exact"], r["model_minus_exact_se"]))


# samplers*.json: benchmarks/samplers.py on the exact score, beside the peers
def smp(d: dict, problem: str, sde: str, lib: str, sampler: str, budget: int) -> dict:
    return one(d["rows"], problem=problem, sde=sde, lib=lib, sampler=sampler, budget=budget)


def mz(d: dict, problem: str, sde: str, lib: str, sampler: str, budget: int) -> float:
    return smp(d, problem, sde, lib, sampler, budget)["max_abs_z"]


def best_peer(d: dict, problem: str, sde: str, budget: int) -> float:
    return min(r["max_abs_z"] for r in d["rows"] if r["problem"] == problem and r["sde"] == sde
               and r["budget"] == budget and r["lib"] != "scoresde")


def peer_best(d: dict, problem: str, sde: str, budget: int, lib: str, sampler: str) -> float:
    """The max |z| of the named peer row, which must be the best of the peers there."""
    z = mz(d, problem, sde, lib, sampler, budget)
    assert z == best_peer(d, problem, sde, budget), (lib, sampler)
    return z


def floor(d: dict, problem: str) -> tuple[float, float]:
    f = d["runs"][0]["floors"][problem]
    return f["mean"], f["sd"]


STOCHASTIC_64D = ("em", "reverse_diffusion", "ancestral", "euler_ancestral", "DDPM", "ScoreSdeVe")


def stochastic_64d(d: dict, key: str) -> tuple[float, float]:
    """Range over both SDEs of the stochastic samplers other than PC at 200 NFE in 64-D."""
    return span(r[key] for r in d["rows"] if r["problem"] == "mix64" and r["budget"] == 200
                and r["sampler"] in STOCHASTIC_64D)


def speedup(d: dict, entry: str, scoresde: str, peer: str) -> float:
    return one(d[entry], scoresde=scoresde, peer=peer)["speedup"]


def all_speedups(vp: dict, ve: dict, sp: dict, samplers=("ddim", "heun", "dpm++2m")) -> tuple:
    return span(r["speedup"] for r in vp["speed"] + ve["speed"] + sp["rows"] if r["scoresde"] in samplers)


SPEED = ("samplers_vp.json", "samplers_ve.json", "samplers_speed.json")


# samplers_toy.json: the defaults and PC's norms
def default(d: dict, sde: str, sampler: str) -> dict:
    return one(d["defaults"], sde=sde, sampler=sampler)


def default_nfe(d: dict, *samplers: str) -> int:
    nfes = {r["nfe"] for r in d["defaults"] if r["sampler"] in samplers}
    assert len(nfes) == 1, nfes
    return nfes.pop()


def norms(d: dict, sde: str) -> tuple:
    s, b = one(d["pc_norms"], sde=sde, norms="sample"), one(d["pc_norms"], sde=sde, norms="batch")
    return s["chi2"], s["max_abs_z"], b["chi2"], b["max_abs_z"]


# fast_samplers_*.json: the smallest NFE reaching the noise level
def fewest(d: dict, lib: str, *samplers: str, **match) -> int | str:
    """The smallest NFE of any ``lib`` row of ``samplers`` (``"—"`` if none reached it)."""
    nfes = [r["nfe"] for r in d["rows"] if r["lib"] == lib and r["sampler"] in samplers
            and r["nfe"] is not None and all(r[k] == v for k, v in match.items())]
    return min(nfes) if nfes else "—"


def fewest3(lib: str, *samplers: str) -> Callable:
    """``fewest`` in the VP, sub-VP (eps 0.1) and VE (eps 0.28) files, as the tables show them."""
    return lambda vp, subvp, ve: tuple(fewest(d, lib, *samplers) for d in (vp, subvp, ve))


def fast_nfe(vp: dict, subvp: dict, ve: dict) -> tuple:
    """The NFE of ``sampler="fast"``'s configuration per SDE."""
    return (fewest(vp, "scoresde", "dpm++3m", grid="logsnr", eps=0.03),
            fewest(subvp, "scoresde", "dpm++3m", grid="logsnr"),
            fewest(ve, "scoresde", "unipc3", grid="logsnr"))


FAST3 = ("fast_samplers_vp.json", "fast_samplers_subvp_eps0.1.json", "fast_samplers_ve_eps0.28.json")
KD = ("euler", "heun", "dpm_2", "dpmpp_2m", "lms")


# fast_trained*.json: RMS error against the model's own ODE solution
def rms(d: dict, solver: str, budget: int) -> float:
    return one(d["rows"], solver=solver, budget=budget)["rms"]


SOLVERS = ("ddim", "heun", "dpm++2m", "dpm++3m", "unipc3")


def wins(d: dict, solver: str) -> list[bool]:
    """Per budget: whether ``solver`` has the smallest RMS of ``SOLVERS``."""
    rivals = [s for s in SOLVERS if s != solver]
    return [all(rms(d, solver, b) < rms(d, r, b) for r in rivals) for b in d["budgets"]]


def leads_from(d: dict, solver: str) -> int:
    """The smallest budget from which ``solver`` is the most accurate at every larger budget."""
    w = wins(d, solver)
    return next(b for k, b in enumerate(d["budgets"]) if all(w[k:]))


def leads_up_to(d: dict, solver: str) -> int:
    """The largest budget up to which ``solver`` is the most accurate at every budget."""
    w = wins(d, solver)
    return d["budgets"][w.index(False) - 1] if False in w else d["budgets"][-1]


def ahead(d: dict, budgets: tuple[int, ...] = (6, 8, 10, 12, 15, 20, 30)) -> tuple[float, float]:
    """Range of the third-order solvers' RMS over ``dpm++2m``'s."""
    return span(rms(d, s, b) / rms(d, "dpm++2m", b) for s in ("dpm++3m", "unipc3") for b in budgets)


# likelihood*.json
def lk(d: dict, run: str, key: str) -> float:
    return d["results"][run][key]


# mnist.json
def mnist_row(d: dict, config: str) -> tuple:
    c = d["configs"][config]
    e0, e1, e2 = c["evals"]
    return (c["steps"], c["steps_per_s"], e0["bpd"], e0["se"], e0["step"], e1["bpd"], e1["se"],
            e1["step"], e2["bpd"], e2["se"])


# compare_mnist.json
def cm(d: dict, lib: str, sampler: str, grid: str, budget: int) -> dict:
    return one(d["rows"], lib=lib, sampler=sampler, grid=grid, budget=budget)


def cm_fd(d: dict, budget: int, keep: Callable[[dict], bool] = lambda r: True, key: str = "fd") -> tuple:
    return span(r[key] for r in d["rows"] if r["budget"] == budget and keep(r))


def not_karras_euler(r: dict) -> bool:
    return (r["sampler"], r["grid"]) != ("euler", "karras")


def cm_final(d: dict) -> list[dict]:
    """The stochastic samplers at 100 NFE and the adaptive ODE."""
    return [r for r in d["rows"] if r["sampler"] in ("em", "ancestral", "ode") and r["budget"] in (0, 100)]


# samplers_overhead.json
def overhead(d: dict, sampler: str) -> tuple:
    r = one(d["rows"], sampler=sampler)
    direct = f"{100 * r['overhead_ratio']:.2g}".replace("-", "−")
    return (r["nfe"], 1e3 * r["call_seconds"], 1e3 * r["bookkeeping_seconds"] / r["nfe"],
            100 * r["bookkeeping_ratio"], direct)


def bookkeeping(d: dict, *samplers: str) -> tuple:
    return tuple(100 * one(d["rows"], sampler=s)["bookkeeping_ratio"] for s in samplers)


# ---------------------------------------------------------------------------------------------
# the quotes


class Q(NamedTuple):
    page: str
    quote: str
    source: str | tuple[str, ...]
    extract: Callable[..., Any]
    fmt: str


# ald_bias.json: annealed Langevin's weight bias against levels, step and seeds
AB = "ald_bias.json"


def ab(d: dict, sde: str, levels: int, varied: str = "levels", **match) -> dict:
    return one(d["rows"], sde=sde, levels=levels, varied=varied, **match)


# likelihood_speed.json: bits/dim error against time on the quick MNIST model, and the oracle
LS = "likelihood_speed.json"


def lsr(d: dict, method: str, tol: float) -> dict:
    return one(d["image"]["rows"], method=method, tol=tol)


def lso(d: dict, sde: str, norm: str, tol: float) -> float:
    return one(d["oracle"], sde=sde, norm=norm, tol=tol)["err_nats_per_dim"]


LS64 = "likelihood_speed_float64.json"


def f64(d: dict, dtype: str, tol: float) -> dict:
    return one(d["rows"], dtype=dtype, tol=tol)


def scis(*values: float) -> tuple[str, ...]:
    return tuple(sci(v) for v in values)


def lss(d: dict, method: str) -> tuple:
    s = d["image"]["speedup"][method]
    return (s["speedup"], *s["speedup_range"])


# few_step_mnist.json: the few-step sweep on the quick MNIST model
FS = "few_step_mnist.json"


def fs(d: dict, lib: str, sampler: str, grid: str, eps: float, nfe: int) -> dict:
    return one(d["rows"], lib=lib, sampler=sampler, grid=grid, eps=eps, nfe=nfe, reference=False)


def fs_curve(d: dict, lib: str, sampler: str, grid: str, eps: float) -> tuple[float, ...]:
    return tuple(fs(d, lib, sampler, grid, eps, n)["fd"] for n in (4, 5, 6, 8, 10))


def fs_best(d: dict, lib: str, nfe: int) -> float:
    return min(r["fd"] for r in d["rows"] if r["lib"] == lib and r["nfe"] == nfe and not r["reference"])


R, L, S, B, T = "README.md", "docs/likelihood.md", "docs/samplers.md", "docs/benchmarks.md", "docs/testing.md"
BR = "benchmarks/README.md"
ROW = "| {:.3f} ± {:.3f} | {:.3f} | {:.3f} | {} |"  # likelihood.md: the main job's NLL table
MNIST = "| {} | {:.2f} | {:.2f} ± {:.2f} ({}) | {:.2f} ± {:.2f} ({}) | {:.2f} ± {:.2f} |"
LK_ROW = "| {:.2f} | {} | {} |"  # benchmarks.md: seconds, network passes, error (bits/dim)

QUOTES = [
    # README: the main job
    Q(R, "took 127 s by its own clock, 150 s with the import and the figures, against 202 s / 226 s",
      "compare_toy_workers.json",
      lambda d: (d["workers"]["seconds"], d["wall_seconds_shell"]["workers"], d["serial"]["seconds"],
                 d["wall_seconds_shell"]["serial"] if d["identical_records"] else math.nan),
      "took {:.0f} s by its own clock, {:.0f} s with the import and the figures, "
      "against {:.0f} s / {:.0f} s"),
    Q(R, "2,400 steps with EDM's", "compare_toy.json", lambda d: d["train_steps"], "{:,} steps"),
    Q(R, "within 0.77–1.02× of the exact score's sliced W2", "compare_toy.json",
      lambda d: span(ratios(d, ("vp", "subvp", "ve"))), "{:.2f}–{:.2f}×"),
    # README: the likelihood
    Q(R, "1.33–1.46x faster at the same tolerance", ("likelihood.json", "likelihood_width1024.json"),
      lambda a, b: (lk(a, "ours_t", "speedup_vs_baseline"), lk(b, "ours_t", "speedup_vs_baseline")),
      "{:.2f}–{:.2f}x"),
    # README: the table of defaults
    *(Q(R, quote, "samplers_toy.json", lambda d, s=samplers: default_nfe(d, *s), "| {} |")
      for quote, samplers in [
          ("ε = σ_L² / 2 | 4001 |", ("ald",)),
          ("| 1000 uniform steps | 1001 |", ("em", "reverse_diffusion", "ancestral")),
          ("snr 0.16 VP / 0.075 VE | 2001 |", ("pc",)),
          ("| 100 uniform steps, η = 0 | 101 |", ("ddim",)),
          ("(ρ = 7) | 81 |", ("heun",)),
          ("(UniPC `order` 3) | 21 |", ("dpm++2m", "dpm++3m", "unipc")),
      ]),
    Q(R, "| 98 VP / 104 sub-VP / 116 VE |", "samplers_toy.json",
      lambda d: tuple(default(d, sde, "ode")["nfe"] for sde in ("VP", "sub-VP", "VE")),
      "| {} VP / {} sub-VP / {} VE |"),
    Q(R, "| 15 VP / 15 sub-VP / 13 VE |", FAST3, fast_nfe, "| {} VP / {} sub-VP / {} VE |"),
    # README: the corrector's norms and annealed Langevin
    Q(R, "χ² 152 against 0.2 on the 2-D mixture", "samplers_toy.json",
      lambda d: norms(d, "VP")[::2], "χ² {:.0f} against {:.1f}"),
    Q(R, "χ² of the mode weights 23 on VE and 31 on VP", AB,
      lambda d: (ab(d, "VE", 200)["chi2"], ab(d, "VP", 200)["chi2"]),
      "χ² of the mode weights {:.0f} on VE and {:.0f} on VP"),
    Q(R, "give 7.6 and 7.0", AB, lambda d: (ab(d, "VE", 800)["chi2"], ab(d, "VP", 800)["chi2"]),
      "give {:.1f} and {:.1f}"),
    Q(R, "(11.4 and 9.5 on seeds 20–22)", AB,
      lambda d: tuple(ab(d, sde, 800, varied="seeds", first_seed=20)["chi2"] for sde in ("VE", "VP")),
      "({:.1f} and {:.1f} on seeds 20–22)"),
    Q(R, "0.490–0.495 on every seed set", AB,
      lambda d: span(r["weights"][0] for r in d["rows"] if r["sde"] in ("VE", "VP") and r["levels"] == 800),
      "{:.3f}–{:.3f} on every seed"),
    Q(R, "at 1,600 levels too (0.484–0.491)", AB,
      lambda d: span(ab(d, sde, 1600)["weights"][0] for sde in ("VE", "VP")), "too ({:.3f}–{:.3f})"),
    Q(R, "(χ² 0.7 VE / 3.8 VP)", AB,
      lambda d: tuple(ab(d, sde, 1600, varied="step_ratio")["chi2"] for sde in ("VE", "VP")),
      "(χ² {:.1f} VE / {:.1f} VP)"),
    Q(S, "is 7.6 (VE) and 7.0 (VP), against 23 and 31 with 200 levels", AB,
      lambda d: (ab(d, "VE", 800)["chi2"], ab(d, "VP", 800)["chi2"], ab(d, "VE", 200)["chi2"],
                 ab(d, "VP", 200)["chi2"]),
      "is {:.1f} (VE) and {:.1f} (VP), against {:.0f} and {:.0f} with"),
    Q(R, "(max |z| 17.7 on the pooled points)", AB, lambda d: ab(d, "sub-VP", 800)["max_abs_z"],
      "(max |z| {:.1f} on"),
    Q(L, "2,250 steps) for 8 test images", LS, lambda d: d["image"]["n"], "2,250 steps) for {} test images"),
    Q(L, "error at rtol = atol = 1e-4, 6.6e-4 bits/dim", LS, lambda d: sci(lsr(d, "paper", 1e-4)["err_abs"]),
      "1e-4, {} bits/dim"),
    Q(L, "1.44× faster with the default norm and 1.52× with", LS,
      lambda d: (lss(d, "mixed")[0], lss(d, "logp")[0]),
      "{:.2f}× faster with the default norm and {:.2f}× with"),
    Q(L, "(1.21–1.54× and 1.27–1.60× from", LS, lambda d: (*lss(d, "mixed")[1:], *lss(d, "logp")[1:]),
      "({:.2f}–{:.2f}× and {:.2f}–{:.2f}× from"),
    Q(L, "Between 2.1 s and 12.3 s", LS,
      lambda d: (lsr(d, "logp", 3e-3)["median_seconds"], lsr(d, "paper", 3e-5)["median_seconds"]),
      "Between {:.1f} s and {:.1f} s"),
    Q(L, "at 6.6e-4–1.1e-3 whatever", LS,
      lambda d: scis(lsr(d, "paper", 1e-4)["err_abs"], lsr(d, "paper", 3e-4)["err_abs"]),
      "at {}–{} whatever"),
    Q(L, "norm at 3e-5, 2.2e-4 in 17.6 s", LS,
      lambda d: (sci(lsr(d, "mixed", 3e-5)["err_abs"]), lsr(d, "mixed", 3e-5)["median_seconds"]),
      "3e-5, {} in {:.1f} s"),
    Q(L, "at 1e-4, 4.8e-4 in 10.8 s", LS,
      lambda d: (sci(lsr(d, "logp", 1e-4)["err_abs"]), lsr(d, "logp", 1e-4)["median_seconds"]),
      "at 1e-4, {} in {:.1f} s"),
    Q(L, "format (the same arithmetic, rounded otherwise) has 1.2e-3 where the plain layout has 6.6e-4", LS,
      lambda d: scis(lsr(d, "channels_last", 1e-3)["err_abs"], lsr(d, "mixed", 1e-3)["err_abs"]),
      "has {} where the plain layout has {}"),
    Q(L, "bits/dim by 0.027 (6 probes)", LS,
      lambda d: (d["image"]["hutchinson"]["per_image_sd_mean"], d["image"]["hutchinson"]["probes"]),
      "by {:.3f} ({} probes)"),
    Q(L, "Monte-Carlo error of 0.0018", LS, lambda d: d["image"]["hutchinson"]["se_mean_bpd_batch256"],
      "error of {:.4f}"),
    Q(L, "80 evaluations, 2.1 s, error 9.8e-4, against 3.8 s", LS,
      lambda d: (lsr(d, "logp", 3e-3)["nfe"], lsr(d, "logp", 3e-3)["median_seconds"],
                 sci(lsr(d, "logp", 3e-3)["err_abs"]), lsr(d, "paper", 1e-3)["median_seconds"]),
      "{} evaluations, {:.1f} s, error {}, against {:.1f} s"),
    Q(L, "(1e-3, 208 network passes)", LS, lambda d: lsr(d, "paper", 1e-3)["nfe"], "(1e-3, {} network"),
    Q(L, "shifts the bits/dim by 0.147", LS, lambda d: lsr(d, "bf16", 1e-3)["err_abs"], "by {:.3f}"),
    Q(L, "(error 5.4e-3 at 1e-3)", LS, lambda d: sci(lsr(d, "mixed_log_sigma", 1e-3)["err_abs"]),
      "(error {} at"),
    Q(L, "off by 2.5e-3 (VP) and 3.1e-3", LS,
      lambda d: scis(lso(d, "VP", "logp", 1e-3), lso(d, "VE", "logp", 1e-3)), "off by {} (VP) and {}"),
    Q(L, "(4.8e-5 and 1.8e-5 nats/dim there)", LS,
      lambda d: scis(lso(d, "VP", "mixed", 1e-5), lso(d, "VE", "mixed", 1e-5)), "({} and {} nats/dim"),
    Q(L, "network falls from 7.3e-4 at 1e-3 to 3.6e-4 at 1e-4 and 1.5e-4 at 3e-5", LS64,
      lambda d: scis(*(f64(d, "float64", tol)["err_abs"] for tol in (1e-3, 1e-4, 3e-5))),
      "from {} at 1e-3 to {} at 1e-4 and {} at 3e-5"),
    Q(L, "network it is 7.6e-4 at 1e-4", LS64, lambda d: sci(f64(d, "float32", 1e-4)["err_abs"]),
      "it is {} at 1e-4"),
    Q(L, "costs 2.8–3.4× as much per run", LS64,
      lambda d: span(f64(d, "float64", t)["seconds"] / f64(d, "float32", t)["seconds"]
                     for t in (1e-3, 1e-4, 3e-5)),
      "costs {:.1f}–{:.1f}×"),
    # README: how scoresde compares
    Q(R, "(max |z| 4.5 VP / 4.1 VE; best peer 10.2 / 7.8;", "samplers.json",
      lambda d: (*(mz(d, "toy2d", sde, "scoresde", "dpm++3m", 10) for sde in ("VP", "VE")),
                 best_peer(d, "toy2d", "VP", 10), best_peer(d, "toy2d", "VE", 10)),
      "(max |z| {:.1f} VP / {:.1f} VE; best peer {:.1f} / {:.1f};"),
    Q(R, "is 15 (VP) / 15 (sub-VP) / 13 (VE) with `\"fast\"`", FAST3, fast_nfe,
      "is {} (VP) / {} (sub-VP) / {} (VE)"),
    Q(R, "against 17 / 17 / 15 for k-diffusion's best (`dpmpp_2m`)", FAST3,
      lambda *ds: tuple(fewest(d, "k-diffusion", *KD) for d in ds), "against {} / {} / {} for"),
    Q(R, "UniPC-3 is the most accurate from 12 NFE and DPM-Solver++(2M) up to 10", "fast_trained_2000.json",
      lambda d: (leads_from(d, "unipc3"), leads_up_to(d, "dpm++2m")),
      "from {} NFE and DPM-Solver++(2M) up to {}"),
    Q(R, "2M leads at every budget up to 30 NFE", "fast_trained.json",
      lambda d: leads_up_to(d, "dpm++2m"), "up to {} NFE"),
    Q(R, "(max |z| 8.9 vs 9.5 VP,", "samplers.json",
      lambda d: (mz(d, "mix64", "VP", "scoresde", "dpm++2m", 10),
                 mz(d, "mix64", "VP", "k-diffusion", "lms", 10)),
      "(max |z| {:.1f} vs {:.1f} VP"),
    Q(R, "(peer / scoresde time 0.87–1.33 over four runs", SPEED, all_speedups, "time {:.2f}–{:.2f} over"),
    Q(R, "costs 1.4–3.1 % of the network calls of a small MLP (DDIM 1.8 %, Euler–Maruyama 2.2 %, "
         "Heun 1.4 %, DPM-Solver++(3M) 3.1 %), within the 5 % goal, except UniPC at 7.4 %",
      "samplers_overhead.json",
      lambda d: (*span(bookkeeping(d, "ddim", "em", "heun", "dpm++3m")),
                 *bookkeeping(d, "ddim", "em", "heun", "dpm++3m", "unipc")),
      "costs {:.1f}–{:.1f} % of the network calls of a small MLP (DDIM {:.1f} %, Euler–Maruyama {:.1f} %, "
      "Heun {:.1f} %, DPM-Solver++(3M) {:.1f} %), within the 5 % goal, except UniPC at {:.1f} %"),
    Q(R, "(χ² 21 VP / 42 VE, 2–3 when started from `p_T`;", "samplers_prior.json",
      lambda d: (*(one(d["rows"], sde=sde, start="prior")["chi2"] for sde in ("VP", "VE")),
                 *span(r["chi2"] for r in d["rows"] if r["start"] == "exact p_T")),
      "(χ² {:.0f} VP / {:.0f} VE, {:.0f}–{:.0f} when"),

    # docs/likelihood.md: the main job's NLL
    Q(L, "(2,400 Adam steps each", "compare_toy.json", lambda d: d["train_steps"], "({:,} Adam steps"),
    Q(L, "| VP | 2.559 ± 0.054 | 2.555 | 2.556 | 212 |", "compare_toy.json", lambda d: nll(d, "vp"), ROW),
    Q(L, "| sub-VP | 2.558 ± 0.053 | 2.555 | 2.556 | 206 |", "compare_toy.json",
      lambda d: nll(d, "subvp"), ROW),
    Q(L, "| VE (σ_max = 11) | 2.574 ± 0.054 | 2.555 | 2.568 | 212 |", "compare_toy.json",
      lambda d: nll(d, "ve"), ROW),
    Q(L, "exact is 0.004 ± 0.006 (VP), 0.004 ± 0.005 (sub-VP) and 0.020 ± 0.008 nats (VE)",
      "compare_toy.json", paired,
      "{:.3f} ± {:.3f} (VP), {:.3f} ± {:.3f} (sub-VP) and {:.3f} ± {:.3f} nats (VE)"),

    # docs/samplers.md: the exact-score runs of the main job (their table: test_samplers_page_table)
    Q(S, "spent 38 / 62 / 74 evaluations at `rtol = atol` = 1e-2 / 1e-3 / 1e-4 on VP "
         "(max |z| 17 / 1.5 / 1.3) and 44 / 44 / 56 on VE (13 / 2.2 / 2.3)", "compare_toy.json",
      lambda d: tuple(x for sde in ("vp", "ve") for x in (
          *(toy(d, "ode", sde, i)["nfe"] for i in range(3)), *(oz(d, "ode", sde, i) for i in range(3)))),
      "spent {} / {} / {} evaluations at `rtol = atol` = 1e-2 / 1e-3 / 1e-4 on VP (max |z| {} / {} / {}) "
      "and {} / {} / {} on VE ({} / {} / {})"),
    Q(S, "(e.g. dpm++3m: 22 at NFE 10, 2.8 at 25; em: 3.4 at 50, 1.9 at 100)", "compare_toy.json",
      lambda d: tuple(oz(d, s, "subvp", b)
                      for s, b in [("dpm++3m", 10), ("dpm++3m", 25), ("em", 50), ("em", 100)]),
      "dpm++3m: {} at NFE 10, {} at 25; em: {} at 50, {} at 100"),
    Q(S, "(VP: DPM-Solver++(3M) 4.4; VE: DPM-Solver++(2M) 4.4)", "compare_toy.json",
      lambda d: (oz(d, "dpm++3m", "vp", 10), oz(d, "dpm++2m", "ve", 10)),
      "(VP: DPM-Solver++(3M) {}; VE: DPM-Solver++(2M) {})"),
    Q(S, "reverse diffusion is still at 3.9 on VP at 100", "compare_toy.json",
      lambda d: oz(d, "reverse_diffusion", "vp", 100), "still at {} on VP"),
    Q(S, "at NFE 100: EM 3.4, ancestral 7.5, against 20.5–21.3 for the ODE solvers", "compare_toy.json",
      lambda d: (toy(d, "em", "ve", 100)["chi2"], toy(d, "ancestral", "ve", 100)["chi2"],
                 *span(toy(d, s, "ve", 100)["chi2"] for s in DETERMINISTIC)),
      "EM {:.1f}, ancestral {:.1f}, against {:.1f}–{:.1f}"),
    Q(S, "(2 steps per level: max |z| 11–37 at NFE 100 on the three SDEs)", "compare_toy.json",
      lambda d: span(toy(d, "ald", sde, 100)["max_abs_z"] for sde in ("vp", "subvp", "ve")),
      "max |z| {:.0f}–{:.0f}"),
    Q(S, "is 1.6 for every multistep solver, Heun and RK4 at NFE 100; on VE it is 21.3", "compare_toy.json",
      lambda d: tuple(same((toy(d, s, sde, 100)["chi2"] for s in DETERMINISTIC[1:]), 1)
                      for sde in ("vp", "ve")),
      "is {} for every multistep solver, Heun and RK4 at NFE 100; on VE it is {}"),
    Q(S, "VP 152 / 256 against 0.2 / 1.6 with batch norms, sub-VP 151 / 220 against 3.2 / 1.5, "
         "VE 74 / 124 against 0.0 / 1.7", "samplers_toy.json",
      lambda d: (*norms(d, "VP"), *norms(d, "sub-VP"), *norms(d, "VE")),
      "VP {:.0f} / {:.0f} against {:.1f} / {:.1f} with batch norms, sub-VP {:.0f} / {:.0f} against "
      "{:.1f} / {:.1f}, VE {:.0f} / {:.0f} against {:.1f} / {:.1f}"),
    # docs/samplers.md: few-step solvers
    *(Q(S, quote, FAST3, fewest3(lib, *samplers), fmt) for quote, lib, samplers, fmt in [
        ("| scoresde `dpm++3m` | **15** (logsnr, 0.03) | **15** (logsnr, 0.1) | 15 (logsnr, 0.28) |",
         "scoresde", ("dpm++3m",), "| **{}** (logsnr, 0.03) | **{}** (logsnr, 0.1) | {} (logsnr"),
        ("| scoresde `unipc` order 3 | 16 (logsnr, 0.03) | 16 (logsnr, 0.1) | **13** (logsnr, 0.28) |",
         "scoresde", ("unipc3",), "| {} (logsnr, 0.03) | {} (logsnr, 0.1) | **{}** (logsnr"),
        ("| scoresde `unipc` order 2 | 13 (uniform t, 0.03)* | 14 (uniform t, 0.1)* | 14 (Karras, 0.28) |",
         "scoresde", ("unipc2",), "| {} (uniform t, 0.03)* | {} (uniform t, 0.1)* | {} (Karras"),
        ("| scoresde `dpm++2m` | 17 | 17 (logsnr, 0.1) | 15 (logsnr, 0.28) |",
         "scoresde", ("dpm++2m",), "| {} | {} (logsnr, 0.1) | {} (logsnr"),
        ("| k-diffusion `dpmpp_2m` (exponential grid) | 17 | 17 (0.1) | 15 (0.28) |",
         "k-diffusion", ("dpmpp_2m",), "| {} | {} (0.1) | {} (0.28)"),
        ("| k-diffusion `lms` | — | 24 (exponential, 0.1) | 28 (0.28) |",
         "k-diffusion", ("lms",), "| {} | {} (exponential, 0.1) | {} (0.28)"),
        ("| k-diffusion `euler`, `heun`, `dpm_2` (Karras or exponential grid) | — | — "
         "| 25 (`dpm_2`, exponential, 0.28) |",
         "k-diffusion", ("euler", "heun", "dpm_2"), "| {} | {} | {} (`dpm_2`"),
    ]),
    Q(S, "At `eps = 1e-3` the best VP configuration needs 22 NFE (`fast_samplers_vp.json`)",
      "fast_samplers_vp.json",
      lambda d: fewest(d, "scoresde", "dpm++2m", "dpm++3m", "unipc2", "unipc3", eps=0.001), "needs {} NFE"),
    Q(S, "(the smallest NFE in the `fast_samplers_*.json` files is 13)",
      tuple(f"fast_samplers_{n}.json" for n in ("vp", "subvp", "ve", "subvp_eps0.1", "ve_eps0.28")),
      lambda *ds: min(r["nfe"] for d in ds for r in d["rows"] if r["nfe"] is not None), "files is {})"),
    Q(S, "(max |z| 4.5 on VP, `benchmarks/results/samplers.json`)", "samplers.json",
      lambda d: mz(d, "toy2d", "VP", "scoresde", "dpm++3m", 10), "(max |z| {:.1f} on VP"),
    Q(S, "VP, one seed, n = 30,000", "fast_obstacles.json", lambda d: d["n"], "n = {:,}"),
    Q(S, "3M's max |z| is 6.1 at 8 NFE, 3.9 at 10, 3.0 at 14, 2.2 at 20 and 0.8 at 40", "fast_obstacles.json",
      lambda d: tuple(r["data_prediction_3m"] for r in d["ode_error"]),
      "is {:.1f} at 8 NFE, {:.1f} at 10, {:.1f} at 14, {:.1f} at 20 and {:.1f} at 40"),
    Q(S, "falling only about as NFE^-1.3 from 8 to 40 NFE", "fast_obstacles.json",
      lambda d: math.log(d["ode_error"][0]["data_prediction_3m"] / d["ode_error"][-1]["data_prediction_3m"])
      / math.log(40 / 8),
      "NFE^-{:.1f} from 8 to 40"),
    Q(S, "is worse (6.6 at 10 NFE)", "fast_obstacles.json",
      lambda d: one(d["ode_error"], nfe=10)["noise_prediction_3m"], "({:.1f} at 10 NFE)"),
    Q(S, "1, 1.2, 1.5: max |z| 3.5, 3.1, 2.2, 4.2, 11.8 with the Tweedie step", "fast_obstacles.json",
      lambda d: tuple(r["max_abs_z"] for r in d["warped"]), "max |z| {:.1f}, {:.1f}, {:.1f}, {:.1f}, {:.1f}"),
    Q(S, "`dpm++2m` is the most accurate from 6 to 30 NFE, 1.5–5.4x ahead of the third-order solvers",
      "fast_trained.json", lambda d: (leads_up_to(d, "dpm++2m"), *ahead(d)),
      "6 to {} NFE, {:.1f}–{:.1f}x ahead"),
    Q(S, "(0.024 against 0.039 for 2M at 15 NFE)", "fast_trained_2000.json",
      lambda d: (rms(d, "unipc3", 15), rms(d, "dpm++2m", 15)), "({:.3f} against {:.3f} for"),
    # docs/samplers.md: the trained models of the main job
    Q(S, "exact samples of 2,000 points score 0.149–0.242 against the 10,000-point reference",
      "compare_toy.json", lambda d: span(d["floor_sliced_w2"]), "score {:.3f}–{:.3f} against"),
    Q(S, "reaches 0.094–0.121 trained against 0.121–0.127 exact on VP and sub-VP (ratios 0.77–0.95), "
         "and 0.361–0.371 against 0.353–0.366 on VE (1.01–1.02)", "compare_toy.json",
      lambda d: (*span(w2(d, ("vp", "subvp"), "trained")), *span(w2(d, ("vp", "subvp"), "oracle")),
                 *span(ratios(d, ("vp", "subvp"))), *span(w2(d, ("ve",), "trained")),
                 *span(w2(d, ("ve",), "oracle")), *span(ratios(d, ("ve",)))),
      "reaches {:.3f}–{:.3f} trained against {:.3f}–{:.3f} exact on VP and sub-VP (ratios {:.2f}–{:.2f}), "
      "and {:.3f}–{:.3f} against {:.3f}–{:.3f} on VE ({:.2f}–{:.2f})"),
    Q(S, "sit at 0.34–0.37 with χ² 20–21 at 50 and 100 NFE", "compare_toy.json",
      lambda d: (*span(w2(d, ("ve",), "oracle", 50) + w2(d, ("ve",), "oracle", 100)),
                 *span(toy(d, s, "ve", b)["chi2"] for s in DETERMINISTIC for b in (50, 100))),
      "sit at {:.2f}–{:.2f} with χ² {:.0f}–{:.0f}"),
    Q(S, "Euler–Maruyama 0.041 / 0.064 / 0.207 (VP / sub-VP / VE), ancestral 0.066 (VP) / 0.208 (VE)",
      "compare_toy.json",
      lambda d: (*(toy(d, "em", sde, 100, "trained")["sliced_w2"] for sde in ("vp", "subvp", "ve")),
                 *(toy(d, "ancestral", sde, 100, "trained")["sliced_w2"] for sde in ("vp", "ve"))),
      "Euler–Maruyama {:.3f} / {:.3f} / {:.3f} (VP / sub-VP / VE), ancestral {:.3f} (VP) / {:.3f} (VE)"),
    Q(S, "1.8–2.4 on VP (`benchmarks/results/compare_toy_steps.json`)", "compare_toy_steps.json",
      lambda d: span(v for k, run in d["runs"].items() if "default" not in k
                     for name, v in run["ratios"].items() if name.startswith("vp/")),
      "{:.1f}–{:.1f} on VP"),

    # docs/benchmarks.md: samplers on the exact score (their tables: test_benchmarks_sampler_tables)
    Q(B, "(0.212 on the 2-D VP panel)", "samplers.json",
      lambda d: smp(d, "toy2d", "VP", "scoresde", "dpm++2m", 1000)["sw2"], "({:.3f} on"),
    Q(B, "converge to SW2 0.159 (VP) / 0.213 (VE), far above the floor (0.061 ± 0.011), "
         "with mode-weight χ² 21 / 42", "samplers.json",
      lambda d: (*(smp(d, "mix64", sde, "scoresde", "dpm++3m", 200)["sw2"] for sde in ("VP", "VE")),
                 *floor(d, "mix64"),
                 *(smp(d, "mix64", sde, "scoresde", "dpm++3m", 200)["chi2"] for sde in ("VP", "VE"))),
      "SW2 {:.3f} (VP) / {:.3f} (VE), far above the floor ({:.3f} ± {:.3f}), "
      "with mode-weight χ² {:.0f} / {:.0f}"),
    Q(B, "(SW2 0.045–0.082, χ² 0.03–4.5; PC 0.074 / 0.121 with χ² 3.4 / 10.4)", "samplers.json",
      lambda d: (*stochastic_64d(d, "sw2"), *stochastic_64d(d, "chi2"),
                 *(smp(d, "mix64", sde, "scoresde", "pc", 200)[k]
                   for k in ("sw2", "chi2") for sde in ("VP", "VE"))),
      "(SW2 {:.3f}–{:.3f}, χ² {:.2f}–{:.1f}; PC {:.3f} / {:.3f} with χ² {:.1f} / {:.1f})"),
    Q(B, "χ² 21.5 → 2.1 (VP) and 41.5 → 2.9 (VE)", "samplers_prior.json",
      lambda d: tuple(r["chi2"] for r in d["rows"]), "χ² {:.1f} → {:.1f} (VP) and {:.1f} → {:.1f} (VE)"),
    Q(B, "(VP 4.5, VE 4.1; best peer: diffusers DDIM 10.2 on VP, k-diffusion `lms` 7.8 on VE)",
      "samplers.json",
      lambda d: (*(mz(d, "toy2d", sde, "scoresde", "dpm++3m", 10) for sde in ("VP", "VE")),
                 peer_best(d, "toy2d", "VP", 10, "diffusers", "DDIM"),
                 peer_best(d, "toy2d", "VE", 10, "k-diffusion", "lms")),
      "(VP {:.1f}, VE {:.1f}; best peer: diffusers DDIM {:.1f} on VP, k-diffusion `lms` {:.1f} on VE)"),
    Q(B, "is best (VP 8.9, VE 7.0) but only just ahead of k-diffusion `lms` (9.5, 7.1) and diffusers "
         "`DPMSolverMultistep` (VP 9.9)", "samplers.json",
      lambda d: (*(mz(d, "mix64", sde, "scoresde", "dpm++2m", 10) for sde in ("VP", "VE")),
                 *(mz(d, "mix64", sde, "k-diffusion", "lms", 10) for sde in ("VP", "VE")),
                 mz(d, "mix64", "VP", "diffusers", "DPMSolverMultistep", 10)),
      "(VP {:.1f}, VE {:.1f}) but only just ahead of k-diffusion `lms` ({:.1f}, {:.1f}) and diffusers "
      "`DPMSolverMultistep` (VP {:.1f})"),
    Q(B, "`dpm++3m` / `unipc` (10–14) are worse", "samplers.json",
      lambda d: span(mz(d, "mix64", sde, "scoresde", s, 10)
                     for s in ("dpm++3m", "unipc") for sde in ("VP", "VE")),
      "({:.0f}–{:.0f})"),
    Q(B, "reach the converged value on the 2-D mixture (2.4 VP, 2.0–2.5 VE) and `unipc` in 64-D VP (3.0)",
      "samplers.json",
      lambda d: (same((mz(d, "toy2d", "VP", "scoresde", s, 20) for s in ("dpm++3m", "unipc")), 1),
                 *span(mz(d, "toy2d", "VE", "scoresde", s, 20) for s in ("dpm++3m", "unipc")),
                 mz(d, "mix64", "VP", "scoresde", "unipc", 20)),
      "({:.1f} VP, {:.1f}–{:.1f} VE) and `unipc` in 64-D VP ({:.1f})"),
    Q(B, "the best peers are k-diffusion `lms` (3.3 / 2.5 / 4.1) and diffusers `DPMSolverMultistep` "
         "(5.5 on 2-D VP)", "samplers.json",
      lambda d: (*(mz(d, p, sde, "k-diffusion", "lms", 20) for p, sde in
                   [("toy2d", "VP"), ("toy2d", "VE"), ("mix64", "VP")]),
                 mz(d, "toy2d", "VP", "diffusers", "DPMSolverMultistep", 20)),
      "`lms` ({:.1f} / {:.1f} / {:.1f}) and diffusers `DPMSolverMultistep` ({:.1f} on"),
    Q(B, "**toy2d, VP** (SW2 floor 0.146 ± 0.027; `results/samplers.json`)", "samplers.json",
      lambda d: floor(d, "toy2d"), "floor {:.3f} ± {:.3f}"),
    Q(B, "**mix64, VE** (SW2 floor 0.061 ± 0.011; `results/samplers.json`)", "samplers.json",
      lambda d: floor(d, "mix64"), "floor {:.3f} ± {:.3f}"),
    # docs/benchmarks.md: few-step NFE
    *(Q(B, quote, FAST3, fewest3(lib, *samplers), fmt) for quote, lib, samplers, fmt in [
        ("| scoresde `dpm++3m` | **15** (eps 0.03) | **15** (eps 0.1) | 15 (eps 0.28) |", "scoresde",
         ("dpm++3m",), "| **{}** (eps 0.03) | **{}** (eps 0.1) | {} (eps"),
        ("| scoresde `dpm++2m` | 17 | 17 | 15 |", "scoresde", ("dpm++2m",), "| {} | {} | {} |"),
        ("| k-diffusion `dpmpp_2m` | 17 | 17 | 15 |", "k-diffusion", ("dpmpp_2m",), "| {} | {} | {} |"),
        ("| k-diffusion `lms` | — | 24 | 28 |", "k-diffusion", ("lms",), "| {} | {} | {} |"),
        ("| k-diffusion `euler`, `heun`, `dpm_2` | — | — | 25 (`dpm_2`) |", "k-diffusion",
         ("euler", "heun", "dpm_2"), "| {} | {} | {} (`dpm_2`)"),
    ]),
    Q(B, "| scoresde `unipc` (order 3) | 16 | 16 | **13** (eps 0.28), 17 (eps 0.1) |",
      (*FAST3, "fast_samplers_ve.json"),
      lambda vp, subvp, ve, ve01: (*fewest3("scoresde", "unipc3")(vp, subvp, ve),
                                   fewest(ve01, "scoresde", "unipc3", eps=0.1)),
      "| {} | {} | **{}** (eps 0.28), {} (eps 0.1) |"),
    # docs/benchmarks.md: on a trained digits model (its tables: test_fast_trained_tables)
    Q(B, "(batch 128, 250 s on one thread, 2.0 steps/s;", "fast_trained.json",
      lambda d: (d["training"]["batch_size"], d["training"]["seconds"], d["training"]["steps_per_s"]),
      "(batch {}, {:.0f} s on one thread, {:.1f} steps/s;"),
    Q(B, "rtol = atol = 1e-6 (1,292 NFE)", "fast_trained.json",
      lambda d: d["references"][0]["nfe"], "({:,} NFE)"),
    Q(B, "differs from that reference by 4.4·10⁻³ RMS", "fast_trained.json",
      lambda d: 1e3 * d["references"][0]["check_rms"], "by {:.1f}·10⁻³ RMS"),
    Q(B, "1.5–5.4x ahead of the third-order solvers", "fast_trained.json", ahead, "{:.1f}–{:.1f}x ahead"),
    Q(B, "(at 15 NFE 0.053 against 0.157 for `dpm++3m`", "fast_trained.json",
      lambda d: (rms(d, "dpm++2m", 15), rms(d, "dpm++3m", 15)), "NFE {:.3f} against {:.3f} for"),
    Q(B, "differs from the eps 10⁻³ one by 0.016 RMS", "fast_trained.json",
      lambda d: d["references"][1]["rms_to_eps_reference"], "by {:.3f} RMS"),
    Q(B, "The same after 2,000 training steps", "fast_trained_2000.json",
      lambda d: d["training"]["steps"], "after {:,} training"),
    Q(B, "869 s of training at 2.3 steps/s; reference 1,040 NFE, 1.4·10⁻³ RMS", "fast_trained_2000.json",
      lambda d: (d["training"]["seconds"], d["training"]["steps_per_s"], d["references"][0]["nfe"],
                 1e3 * d["references"][0]["check_rms"]),
      "{:.0f} s of training at {:.1f} steps/s; reference {:,} NFE, {:.1f}·10⁻³ RMS"),
    Q(B, "the order flips from 12 NFE on", "fast_trained_2000.json",
      lambda d: leads_from(d, "unipc3"), "from {} NFE on"),
    Q(B, "(0.024 against 0.039 for `dpm++2m` at 15 NFE)", "fast_trained_2000.json",
      lambda d: (rms(d, "unipc3", 15), rms(d, "dpm++2m", 15)), "({:.3f} against {:.3f} for"),
    Q(B, "(0.141 against 0.28–0.30 at 8, 0.084 against 0.085 at 10)", "fast_trained_2000.json",
      lambda d: (rms(d, "dpm++2m", 8), *span(rms(d, s, 8) for s in ("dpm++3m", "unipc3")),
                 rms(d, "dpm++2m", 10), min(rms(d, s, 10) for s in SOLVERS if s != "dpm++2m")),
      "({:.3f} against {:.2f}–{:.2f} at 8, {:.3f} against {:.3f} at 10)"),
    # docs/benchmarks.md: wall time beside the peers
    *(Q(B, quote, SPEED,
        lambda vp, ve, sp, p=pair: (speedup(vp, "speed", *p), speedup(ve, "speed", *p),
                                    speedup(sp, "rows", *p)),
        ", {:.2f}, {:.2f} | {:.2f} |") for quote, pair in [
        ("| `dpm++2m` | k-diffusion `dpmpp_2m` | 0.94, 0.96, 0.92 | 1.20 |",
         ("dpm++2m", "k-diffusion dpmpp_2m")),
        ("| `heun` | k-diffusion `heun` | 1.07, 1.13, 1.01 | 1.03 |", ("heun", "k-diffusion heun")),
        ("| `ddim` | diffusers `DDIMScheduler` | 1.06, 0.87, 1.11 | 0.89 |", ("ddim", "diffusers DDIM")),
        ("| `dpm++2m` | diffusers `DPMSolverMultistepScheduler` | 0.90, 1.12, 0.93 | 1.33 |",
         ("dpm++2m", "diffusers DPMSolverMultistep")),
    ]),
    Q(B, "had a speedup of 0.92–0.96 against k-diffusion's in all three runs; after it, one run "
         "measured 1.20",
      SPEED,
      lambda vp, ve, sp: (*span(speedup(d, "speed", "dpm++2m", "k-diffusion dpmpp_2m") for d in (vp, ve)),
                          speedup(sp, "rows", "dpm++2m", "k-diffusion dpmpp_2m")),
      "of {:.2f}–{:.2f} against k-diffusion's in all three runs; after it, one run measured {:.2f}"),
    Q(B, "DDIM, Heun: 0.87–1.13 over the four runs", SPEED,
      lambda vp, ve, sp: all_speedups(vp, ve, sp, ("ddim", "heun")), "Heun: {:.2f}–{:.2f} over"),
    # docs/benchmarks.md: sampler overhead
    *(Q(B, quote, "samplers_overhead.json", lambda d, s=sampler: overhead(d, s),
        "| {} | {:.2f} | {:.3f} | {:.1f} % | {} % |") for sampler, quote in [
        ("ddim", "| `ddim` | 101 | 3.30 | 0.059 | 1.8 % | 10 % |"),
        ("dpm++3m", "| `dpm++3m` | 101 | 3.75 | 0.118 | 3.1 % | 22 % |"),
        ("unipc", "| `unipc` | 101 | 3.22 | 0.239 | 7.4 % | 9.4 % |"),
        ("em", "| `em` | 101 | 3.44 | 0.077 | 2.2 % | −2.1 % |"),
        ("heun", "| `heun` | 201 | 3.40 | 0.048 | 1.4 % | −2.3 % |"),
    ]),
    Q(B, "its 0.239 ms per NFE would be below 0.5 %", "samplers_overhead.json",
      lambda d: overhead(d, "unipc")[2], "its {:.3f} ms per NFE"),
    # docs/benchmarks.md: likelihood
    Q(B, "baseline 4.10 s (1420 network passes), scoresde in `t` 3.09 s (686 passes), `speedup_vs_baseline` "
         "1.33, bits/dim within 3e-4 of a tighter reference", "likelihood.json",
      lambda d: (lk(d, "baseline_scipy_rk45", "seconds"), lk(d, "baseline_scipy_rk45", "nfe"),
                 lk(d, "ours_t", "seconds"), lk(d, "ours_t", "nfe"), lk(d, "ours_t", "speedup_vs_baseline"),
                 sci(abs(lk(d, "ours_t", "bpd_error_vs_reference")), 0)),
      "baseline {:.2f} s ({} network passes), scoresde in `t` {:.2f} s ({} passes), `speedup_vs_baseline` "
      "{:.2f}, bits/dim within {}"),
    Q(B, "32.8 s against 22.5 s (1.46x); at equal accuracy there (scoresde at 10x the tolerance still as "
         "accurate as the baseline) 3.15x", "likelihood_width1024.json",
      lambda d: (lk(d, "baseline_scipy_rk45", "seconds"), lk(d, "ours_t", "seconds"),
                 lk(d, "ours_t", "speedup_vs_baseline"), lk(d, "ours_t", "speedup_equal_accuracy")),
      "{:.1f} s against {:.1f} s ({:.2f}x); at equal accuracy there (scoresde at 10x the tolerance still as "
      "accurate as the baseline) {:.2f}x"),
    Q(B, "spent more evaluations (1088–1202) and were slower (0.33–0.87x) at both widths",
      ("likelihood.json", "likelihood_width1024.json"),
      lambda a, b: (*span(lk(d, r, "nfe") for d in (a, b) for r in ("ours_sigma", "ours_log_sigma")),
                    *span(lk(d, r, "speedup_vs_baseline")
                          for d in (a, b) for r in ("ours_sigma", "ours_log_sigma"))),
      "({}–{}) and were slower ({:.2f}–{:.2f}x)"),
    *(Q(B, quote, "likelihood.json",
        lambda d, r=run: (lk(d, r, "seconds"), lk(d, r, "nfe"),
                          sci(lk(d, r, "bpd_error_vs_reference"), sign=True)),
        LK_ROW) for run, quote in [
        ("ours_t", "| scoresde, `t` clock, tol 1e-5 | 3.09 | 686 | −2.9e-4 |"),
        ("ours_sigma", "| scoresde, `σ̄` clock, tol 1e-5 | 5.80 | 1088 | −3.3e-5 |"),
        ("k_diffusion", "| k-diffusion, tol 1e-5 | 6.54 | 1106 | −1.7e-5 |"),
        ("ours_sigma_tol_x10", "| scoresde, `σ̄` clock, tol 1e-4 | 2.85 | 542 | +4.7e-5 |"),
        ("k_diffusion_tol_x10", "| k-diffusion, tol 1e-4 | 2.60 | 542 | −3.7e-5 |"),
        ("baseline_scipy_rk45", "| paper-style scipy baseline, tol 1e-5 | 4.10 | 1420 | +5.1e-5 |"),
    ]),
    Q(B, "(5.3 against 5.9 ms at 1e-5, 5.3 against 4.8 ms at 1e-4)", "likelihood.json",
      lambda d: tuple(lk(d, r, "ms_per_forward_pass")
                      for r in ("ours_sigma", "k_diffusion", "ours_sigma_tol_x10", "k_diffusion_tol_x10")),
      "({:.1f} against {:.1f} ms at 1e-5, {:.1f} against {:.1f} ms at 1e-4)"),
    Q(B, "k-diffusion 9 % faster at 1e-4", "likelihood.json",
      lambda d: 100 * (lk(d, "ours_sigma_tol_x10", "seconds") / lk(d, "k_diffusion_tol_x10", "seconds") - 1),
      "{:.0f} % faster"),
    Q(B, "is 2.1x faster than k-diffusion at the same tolerance but 17x less accurate there (3e-4 bits/dim",
      "likelihood.json",
      lambda d: (lk(d, "ours_t", "speedup_vs_k_diffusion"),
                 lk(d, "ours_t", "bpd_error_vs_reference") / lk(d, "k_diffusion", "bpd_error_vs_reference"),
                 sci(abs(lk(d, "ours_t", "bpd_error_vs_reference")), 0)),
      "is {:.1f}x faster than k-diffusion at the same tolerance but {:.0f}x less accurate there "
      "({} bits/dim"),
    # docs/benchmarks.md: training
    Q(B, "ratio 0.93 (MLP width 128, batch 256: 41.3 against 44.3 steps/s) and 1.12 (width 256, batch 1024)",
      "training.json",
      lambda d: (d["results"][0]["ratio"], d["results"][0]["width"], d["results"][0]["batch"],
                 d["results"][0]["trainer_steps_per_s"], d["results"][0]["bare_steps_per_s"],
                 d["results"][1]["ratio"], d["results"][1]["width"], d["results"][1]["batch"]),
      "ratio {:.2f} (MLP width {}, batch {}: {:.1f} against {:.1f} steps/s) and {:.2f} (width {}, batch {})"),
    Q(B, "(width 256: Trainer 3.99–9.42 steps/s, bare loop 5.56–8.77)", "training.json",
      lambda d: (*span(d["results"][1]["runs"]["trainer"]), *span(d["results"][1]["runs"]["bare"])),
      "Trainer {:.2f}–{:.2f} steps/s, bare loop {:.2f}–{:.2f})"),
    # docs/benchmarks.md: MNIST on a CPU budget
    Q(B, "| VP | 159 | 0.24 | 6.68 ± 0.05 (37 steps) | 4.85 ± 0.06 (76) | 3.63 ± 0.07 |", "mnist.json",
      lambda d: mnist_row(d, "mnist_vp"), MNIST.replace("({})", "({} steps)", 1)),
    Q(B, "| sub-VP | 226 | 0.34 | 5.60 ± 0.06 (50) | 3.90 ± 0.06 (111) | 2.91 ± 0.06 |", "mnist.json",
      lambda d: mnist_row(d, "mnist_subvp"), MNIST),
    Q(B, "| VE | 241 | 0.37 | 4.94 ± 0.07 (60) | 3.72 ± 0.06 (121) | 2.65 ± 0.07 |", "mnist.json",
      lambda d: mnist_row(d, "mnist_ve"), MNIST),
    Q(B, "The whole run took 41.7 min (evaluation 38–86 s per point)", "mnist.json",
      lambda d: (d["total_wall_seconds"] / 60,
                 *span(e["eval_seconds"] for c in d["configs"].values() for e in c["evals"])),
      "took {:.1f} min (evaluation {:.0f}–{:.0f} s per point)"),
    Q(B, "got only 7.6 CPU minutes of its 11 (sub-VP 10.4, VE 10.9;", "mnist.json",
      lambda d: tuple(d["configs"][c]["train_cpu_seconds"] / 60
                      for c in ("mnist_vp", "mnist_subvp", "mnist_ve")),
      "only {:.1f} CPU minutes of its 11 (sub-VP {:.1f}, VE {:.1f};"),
    Q(B, "all three ran at 0.35–0.37 steps/s", "mnist.json",
      lambda d: span(c["steps"] / c["train_cpu_seconds"] for c in d["configs"].values()),
      "at {:.2f}–{:.2f} steps/s"),
    Q(B, "(3.63 at 159 steps, against sub-VP 3.90 at 111 and 2.91 at 226, VE 3.72 at 121 and 2.65 at 241)",
      "mnist.json",
      lambda d: tuple(x for c, ks in [("mnist_vp", (2,)), ("mnist_subvp", (1, 2)), ("mnist_ve", (1, 2))]
                      for e in [d["configs"][c]["evals"][k] for k in ks] for x in (e["bpd"], e["step"])),
      "({:.2f} at {} steps, against sub-VP {:.2f} at {} and {:.2f} at {}, VE {:.2f} at {} and {:.2f} at {})"),
    Q(B, "Sampling 8 images took 2.6–3.5 s per sampler", "mnist.json",
      lambda d: span(s["seconds"] for c in d["configs"].values() for s in c["samplers"].values()),
      "took {:.1f}–{:.1f} s"),
    Q(R, "within 1.5x of the 1,000-NFE reference's FD at 5 NFE (FD 17.0 against 17.5, 256 images)", FS,
      lambda d: (d["target"], d["reference_nfe"], d["summary"]["libs"]["scoresde"]["first_within"]["nfe"],
                 d["summary"]["libs"]["scoresde"]["first_within"]["fd"], d["summary"]["reference_fd"],
                 d["n"]),
      "within {:g}x of the {:,}-NFE reference's FD at {} NFE (FD {:.1f} against {:.1f}, {} images)"),
    Q(R, "at 5 NFE too (18.5)", FS,
      lambda d: (d["summary"]["libs"]["k-diffusion"]["first_within"]["nfe"],
                 d["summary"]["libs"]["k-diffusion"]["first_within"]["fd"]), "at {} NFE too ({:.1f})"),
    Q(R, "91 % of its 80 grid samples in the requested class; the filled-in pixels' MSE 0.52 against 0.25",
      "conditional_mnist.json",
      lambda d: (100 * d["class_match"], 10 * d["per_class"], d["mse_unknown"], d["mse_mean_image"]),
      "{:.0f} % of its {} grid samples in the requested class; "
      "the filled-in pixels' MSE {:.2f} against {:.2f}"),
    Q("docs/conditional.md", "91 % of its 80 grid samples are assigned to the requested class, and the "
      "filled-in pixels' MSE is 0.52 against 0.25", "conditional_mnist.json",
      lambda d: (100 * d["class_match"], 10 * d["per_class"], d["mse_unknown"], d["mse_mean_image"]),
      "{:.0f} % of its {} grid samples are assigned to the requested class, and the "
      "filled-in pixels' MSE is {:.2f} against {:.2f}"),
    Q(R, "at w = 4 puts 95.4 % of 500 samples of the unconditional 2,250-step VP model in the requested "
         "class, at FD 4.83 against a floor of 3.42", "mnist_classifier_guided_w4.json",
      lambda d: (d["guidance"], 100 * d["class_match"], d["n"], d["fd"], d["fd_floor"]),
      "at w = {:g} puts {:.1f} % of {} samples of the unconditional 2,250-step VP model in the requested "
      "class, at FD {:.2f} against a floor of {:.2f}"),
    Q(R, "w = 1: 61.2 %", "mnist_classifier_guided_w1.json",
      lambda d: (d["guidance"], 100 * d["class_match"]), "w = {:g}: {:.1f} %"),
    *(Q("docs/conditional.md", quote, f"mnist_classifier_guided_w{w}.json",
        lambda d: (d["guidance"], 100 * d["class_match"], 100 * d["confident"], d["fd"], d["kd"],
                   d["kd_se"], d["sample_seconds"]),
        "| {:g} | {:.1f}% | {:.1f}% | {:.2f} | {:.2f} ± {:.2f} | {:.0f} |")
      for w, quote in ((1, "| 1 | 61.2% | 68.0% | 17.34 | 3.97 ± 0.44 | 80 |"),
                       (4, "| 4 | 95.4% | 91.4% | 4.83 | 0.21 ± 0.52 | 77 |"))),
    Q("docs/conditional.md", "the FD of 17.3 (`mnist_classifier_guided_w1.json`) is no better than the "
      "unguided model's 14.6",
      ("mnist_classifier_guided_w1.json", "mnist_samplers.json"),
      lambda a, b: (a["fd"], one(b["rows"], spec="dpm++2m:20")["fd"]),
      "the FD of {:.1f} (`mnist_classifier_guided_w1.json`) is no better than the unguided model's {:.1f}"),
    Q("docs/conditional.md", "FD 4.8 against a floor of 3.4", "mnist_classifier_guided_w4.json",
      lambda d: (d["fd"], d["fd_floor"]), "FD {:.1f} against a floor of {:.1f}"),
    # docs/samplers.md: few steps on a trained image model (its table: test_few_step_table)
    Q(S, "59 min of sampling by the rows' own clocks", FS,
      lambda d: sum(r["seconds"] for r in d["rows"]) / 60, "{:.0f} min"),
    Q(S, "the floor of 256 training images is 5.4", FS, lambda d: (d["n"], d["floor"]["fd"]),
      "floor of {} training images is {:.1f}"),
    Q(S, "FD 17.5, so the target (1.5x) is 26.3", FS,
      lambda d: (d["summary"]["reference_fd"], d["summary"]["target_fd"], d["target"]),
      "FD {0:.1f}, so the target ({2:g}x) is {1:.1f}"),
    Q(S, "**First within 1.5x of the reference: 5 NFE**", FS,
      lambda d: d["summary"]["libs"]["scoresde"]["first_within"]["nfe"], "reference: {} NFE"),
    Q(S, "UniPC on the uniform-t grid ending at `eps = 0.1` (FD 17.0)", FS,
      lambda d: fs(d, "scoresde", "unipc", "uniform", 0.1, 5)["fd"], "(FD {:.1f})"),
    Q(S, "Nothing reaches the target at 4 NFE (best 28.9)", FS,
      lambda d: fs_best(d, "scoresde", 4) if min(fs_best(d, lib, 4) for lib in ("scoresde", "k-diffusion"))
      > d["summary"]["target_fd"] else math.nan, "(best {:.1f})"),
    Q(S, "k-diffusion's best also reaches the target at 5 NFE (18.5)", FS,
      lambda d: (d["summary"]["libs"]["k-diffusion"]["first_within"]["nfe"],
                 d["summary"]["libs"]["k-diffusion"]["first_within"]["fd"]), "at {} NFE ({:.1f})"),
    Q(S, "FD 29.6 / 18.3 / 17.3 / 18.1 / 17.0 for scoresde against 30.5 / 18.5 / 17.3 / 18.1 / 17.1", FS,
      lambda d: fs_curve(d, "scoresde", "dpm++3m", "uniform", 0.1)
      + fs_curve(d, "k-diffusion", "dpmpp_3m_sde", "vp", 0.1),
      "FD {:.1f} / {:.1f} / {:.1f} / {:.1f} / {:.1f} for scoresde against "
      "{:.1f} / {:.1f} / {:.1f} / {:.1f} / {:.1f}"),
    Q(S, "17.0 against 18.5 at 5 NFE, 16.5 against 17.3 at 6, 15.2 against 16.2 at 8, 15.6 against "
         "15.8 at 10", FS,
      lambda d: tuple(fs_best(d, lib, n) for n in (5, 6, 8, 10) for lib in ("scoresde", "k-diffusion")),
      "{:.1f} against {:.1f} at 5 NFE, {:.1f} against {:.1f} at 6, {:.1f} against {:.1f} at 8, "
      "{:.1f} against {:.1f} at 10"),
    Q(S, "the best 5-NFE row is FD 37.7 (`dpm++2m`, uniform t)", FS,
      lambda d: min((r for r in d["rows"] if r["lib"] == "scoresde" and r["nfe"] == 5 and r["eps"] == 1e-3),
                    key=lambda r: r["fd"])["fd"], "FD {:.1f} (`dpm++2m`"),
    # docs/benchmarks.md: samplers on a trained MNIST model (its table: test_compare_mnist_table)
    Q(B, "27 min of sampling by the rows' own clocks", "compare_mnist.json",
      lambda d: sum(r["seconds"] for r in d["rows"]) / 60, "{:.0f} min of sampling"),
    Q(B, "(99.3 % test accuracy). The floor of 256 real training images is FD 5.40, 98.4 % confident.",
      "compare_mnist.json",
      lambda d: (100 * d["classifier"]["test_accuracy"], d["n"], d["floor"]["fd"],
                 100 * d["floor"]["confident"]),
      "({:.1f} % test accuracy). The floor of {} real training images is FD {:.2f}, {:.1f} % confident."),
    Q(B, "NFE 5 (heun's 2 Karras steps fail, FD 1,810)", "compare_mnist.json",
      lambda d: cm(d, "scoresde", "heun", "karras", 5)["fd"], "FD {:,.0f})"),
    Q(B, "FD 36.9 both; DPM-Solver++(2M) on the log-SNR grid: 38.8 against 39.0)", "compare_mnist.json",
      lambda d: (same([cm(d, "scoresde", "ddim", "uniform", 10)["fd"],
                       cm(d, "k-diffusion", "euler", "ours: uniform", 10)["fd"]], 1),
                 cm(d, "scoresde", "dpm++2m", "logsnr", 10)["fd"],
                 cm(d, "k-diffusion", "dpmpp_2m", "ours: logsnr", 10)["fd"]),
      "FD {} both; DPM-Solver++(2M) on the log-SNR grid: {:.1f} against {:.1f})"),
    Q(B, "(FD 30.3–30.6, its final step goes to σ = 0 with a first-order update) and k-diffusion's 2M on the "
         "Karras grid (33.6) beat scoresde's best 10-NFE solver (DDIM 36.9; 2M on log-SNR 38.8)",
      "compare_mnist.json",
      lambda d: (*cm_fd(d, 10, lambda r: r["sampler"] == "DPMSolverMultistep"),
                 cm(d, "k-diffusion", "dpmpp_2m", "karras", 10)["fd"],
                 cm_fd(d, 10, lambda r: r["lib"] == "scoresde")[0],
                 cm(d, "scoresde", "dpm++2m", "logsnr", 10)["fd"]),
      "(FD {:.1f}–{:.1f}, its final step goes to σ = 0 with a first-order update) and k-diffusion's 2M on "
      "the Karras grid ({:.1f}) beat scoresde's best 10-NFE solver (DDIM {:.1f}; 2M on log-SNR {:.1f})"),
    Q(B, "but k-diffusion's Euler on the Karras grid (37.2) lies at FD 29.9–32.7 (KD 5.3–7.0)",
      "compare_mnist.json",
      lambda d: (cm(d, "k-diffusion", "euler", "karras", 20)["fd"], *cm_fd(d, 20, not_karras_euler),
                 *cm_fd(d, 20, not_karras_euler, "kd")),
      "Karras grid ({:.1f}) lies at FD {:.1f}–{:.1f} (KD {:.1f}–{:.1f})"),
    Q(B, "reach no better (29–31), 5–6× the floor", "compare_mnist.json",
      lambda d: (*span(r["fd"] for r in cm_final(d)), *span(r["fd"] / d["floor"]["fd"] for r in cm_final(d))),
      "({:.0f}–{:.0f}), {:.0f}–{:.0f}× the floor"),

    # docs/testing.md: the constants the tests pin
    Q(T, "pinned at 10 / 20 / 40 steps to 6.382e-2 / 7.520e-3 / 1.404e-3", "tests/test_formula_pins.py",
      lambda c: tuple(sci(c["PINNED_3M"][k], 3) for k in (10, 20, 40)), "to {} / {} / {}"),
    Q(T, "now `-3 se < gap < 0.053 + 3 se`", "tests/test_training_quality.py",
      lambda c: c["MEASURED_GAP"], "< {} + 3 se"),

    # benchmarks/README.md: the table of recorded results
    Q(BR, "| DDIM 1.8 %, EM 2.2 %, Heun 1.4 %, DPM-Solver++(3M) 3.1 %, UniPC 7.4 % (goal ≤ 5 %) |",
      "samplers_overhead.json", lambda d: bookkeeping(d, "ddim", "em", "heun", "dpm++3m", "unipc"),
      "DDIM {:.1f} %, EM {:.1f} %, Heun {:.1f} %, DPM-Solver++(3M) {:.1f} %, UniPC {:.1f} %"),
    Q(BR, "| 1.33x (width 128, `likelihood.json`), 1.46x (width 1024, `likelihood_width1024.json`), "
          "3.15x at equal accuracy at width 1024 |", ("likelihood.json", "likelihood_width1024.json"),
      lambda a, b: (lk(a, "ours_t", "speedup_vs_baseline"), lk(b, "ours_t", "speedup_vs_baseline"),
                    lk(b, "ours_t", "speedup_equal_accuracy")),
      "| {:.2f}x (width 128, `likelihood.json`), {:.2f}x (width 1024, `likelihood_width1024.json`), {:.2f}x"),
    Q(BR, "VP 3.63 ± 0.07 (159 steps), sub-VP 2.91 ± 0.06 (226), VE 2.65 ± 0.07 (241)", "mnist.json",
      lambda d: tuple(x for c in ("mnist_vp", "mnist_subvp", "mnist_ve") for x in (
          d["configs"][c]["evals"][-1]["bpd"], d["configs"][c]["evals"][-1]["se"], d["configs"][c]["steps"])),
      "VP {:.2f} ± {:.2f} ({} steps), sub-VP {:.2f} ± {:.2f} ({}), VE {:.2f} ± {:.2f} ({})"),
]


@pytest.mark.parametrize("q", QUOTES, ids=[f"{q.page}:{squash(q.quote)[:48]}" for q in QUOTES])
def test_quoted_figure_matches_its_results_file(q: Q):
    sources = (q.source,) if isinstance(q.source, str) else q.source
    quote = squash(q.quote)
    assert quote in squash(page_text(q.page)), f"{q.page} no longer says {quote!r}"
    value = q.extract(*(load(s) for s in sources))
    shown = q.fmt.format(*(value if isinstance(value, tuple) else (value,)))
    assert shown in quote, f"{' + '.join(sources)} gives {shown!r}; {q.page} says {quote!r}"
    missing = names_source(q.page, q.quote, sources)
    assert not missing, f"{q.page} does not name {missing} beside {quote!r}"


# ---------------------------------------------------------------------------------------------
# tables rebuilt from their JSON


def table_after(page: str, marker: str) -> list[list[str]]:
    """The cells of the body rows of the first table after ``marker`` on ``page``."""
    text = page_text(page)
    lines = text[text.index(marker):].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


def rounds_to(cell: str, value: float) -> bool:
    """``cell`` (bold or not, Unicode minus) is ``value`` at the number of decimals it shows."""
    number = cell.strip("*").replace("−", "-")
    decimals = len(number.split(".")[1]) if "." in number else 0
    return f"{value:.{decimals}f}" == number


def assert_names(page: str, marker: str, file: str) -> None:
    """The caption of the table after ``marker`` (the marker's paragraph) names ``file``."""
    assert not names_source(page, marker, (file,)), f"{page}: the table after {marker!r} does not name {file}"


SAMPLERS_PAGE_ROWS = {  # docs/samplers.md, max |z| with the exact score: label -> sampler
    "ald (2 steps per level)": "ald", "em": "em", "reverse_diffusion": "reverse_diffusion",
    "ancestral": "ancestral", "pc (ald corrector)": "pc", "ddim": "ddim", "heun": "heun",
    "ode, fixed-step rk4": "ode_rk4", "dpm++2m": "dpm++2m", "dpm++3m": "dpm++3m", "unipc": "unipc",
}


def test_samplers_page_table():
    """docs/samplers.md's max |z| table is the exact-score runs of compare_toy.json, two figures."""
    marker = "Max |z| with the exact score"
    assert_names(S, marker, "compare_toy.json")
    d = load("compare_toy.json")
    rows = table_after(S, marker)
    assert [r[0] for r in rows] == list(SAMPLERS_PAGE_ROWS)
    for label, *cells in rows:
        want = [oz(d, SAMPLERS_PAGE_ROWS[label], sde, b) for sde in ("vp", "ve") for b in (10, 25, 50, 100)]
        assert [c.strip("*") for c in cells] == want, label
    # the caption's NFE as counted where it differs from the budget (10, 50, 100)
    for sampler, nfe in [("ald", (9, 49, 99)), ("pc", (9, 49, 99)), ("heun", (9, 49, 99)),
                         ("ode_rk4", (9, 49, 97))]:
        assert tuple(toy(d, sampler, "vp", b)["nfe"] for b in (10, 50, 100)) == nfe, sampler


PANELS = [("toy2d", "VP"), ("mix64", "VP"), ("toy2d", "VE"), ("mix64", "VE")]


@pytest.mark.parametrize(("problem", "sde"), PANELS)
def test_benchmarks_sampler_tables(problem, sde):
    """docs/benchmarks.md's four panels: every cell is samplers.json's SW2 / max |z| (NFE)."""
    marker = f"**{problem}, {sde}** (SW2 floor"
    assert_names(B, marker, "samplers.json")
    panel = [r for r in load("samplers.json")["rows"] if (r["problem"], r["sde"]) == (problem, sde)]
    rows = table_after(B, marker)
    assert len(rows) == len({(r["lib"], r["sampler"]) for r in panel})
    for label, *cells in rows:
        lib, sampler = label.split(": ")
        runs = sorted((r for r in panel if (r["lib"], r["sampler"]) == (lib, sampler)),
                      key=lambda r: r["budget"])
        want = [f"{r['sw2']:.3f} / {r['max_abs_z']:.1f}"
                + (f" ({r['nfe']})" if r["nfe"] != r["budget"] else "") for r in runs]
        assert cells == want, label


FAST_TRAINED_ROWS = {"`ddim`": "ddim", "`heun`": "heun", "`dpm++2m`": "dpm++2m", "`dpm++3m`": "dpm++3m",
                     "`unipc`": "unipc3", '`"fast"`': "fast (own eps)"}


@pytest.mark.parametrize(("file", "marker"), [
    ("fast_trained.json", "`benchmarks/fast_trained.py` → `results/fast_trained.{json,png}`"),
    ("fast_trained_2000.json", "**The same after 2,000 training steps**"),
])
def test_fast_trained_tables(file, marker):
    """docs/benchmarks.md's RMS tables: each cell is the JSON's RMS at the decimals it shows, with
    the NFE spent in brackets where it differs from the budget."""
    assert_names(B, marker, file)
    d = load(file)
    rows = table_after(B, marker)
    assert len(rows) >= 5
    for label, *cells in rows:
        solver = FAST_TRAINED_ROWS[label.split(" ")[0]]
        assert len(cells) == len(d["budgets"]), label
        for budget, cell in zip(d["budgets"], cells, strict=True):
            r = one(d["rows"], solver=solver, budget=budget)
            value, _, nfe = cell.partition(" (")
            assert rounds_to(value, r["rms"]), (label, budget, cell, r["rms"])
            assert (nfe.rstrip(")") or str(budget)) == str(r["nfe"]), (label, budget, cell)


COMPARE_MNIST_ROWS = {  # docs/benchmarks.md: label -> (lib, samplers, grid, budgets) in compare_mnist.json
    "scoresde ddim (uniform)": ("scoresde", ("ddim",), "uniform", (10, 20)),
    "scoresde dpm++2m (log-SNR)": ("scoresde", ("dpm++2m",), "logsnr", (10, 20)),
    "scoresde dpm++3m (log-SNR)": ("scoresde", ("dpm++3m",), "logsnr", (10, 20)),
    "scoresde unipc (log-SNR)": ("scoresde", ("unipc",), "logsnr", (10, 20)),
    "scoresde heun (Karras)": ("scoresde", ("heun",), "karras", (10, 20)),
    "scoresde em / ancestral (uniform)": ("scoresde", ("em", "ancestral"), "uniform", (100,)),
    "scoresde ode (dopri5, tol 1e-2)": ("scoresde", ("ode",), "uniform", (0,)),
    "k-diffusion euler (ours: uniform)": ("k-diffusion", ("euler",), "ours: uniform", (10, 20)),
    "k-diffusion euler (Karras)": ("k-diffusion", ("euler",), "karras", (10, 20)),
    "k-diffusion dpmpp_2m (ours: log-SNR)": ("k-diffusion", ("dpmpp_2m",), "ours: logsnr", (10, 20)),
    "k-diffusion dpmpp_2m (Karras)": ("k-diffusion", ("dpmpp_2m",), "karras", (10, 20)),
    "diffusers DPMSolverMultistep (trailing)":
        ("diffusers", ("DPMSolverMultistep",), "ours: trailing", (10, 20)),
    "diffusers DPMSolverMultistep (default spacing)":
        ("diffusers", ("DPMSolverMultistep",), "default spacing", (10, 20)),
    "diffusers DDIM (default spacing)": ("diffusers", ("DDIM",), "default spacing", (10, 20)),
}


def test_compare_mnist_table():
    """docs/benchmarks.md's MNIST sampler table: NFE, FD, KD ± se, confident share and wall time
    of each row (``a / b``: two budgets or two samplers) as compare_mnist.json gives them."""
    marker = "python benchmarks/compare_mnist.py --checkpoint"
    assert_names(B, marker, "compare_mnist.json")
    d = load("compare_mnist.json")
    rows = table_after(B, marker)
    assert [r[0] for r in rows] == list(COMPARE_MNIST_ROWS)
    for label, *cells in rows:
        lib, samplers, grid, budgets = COMPARE_MNIST_ROWS[label]
        runs = [cm(d, lib, s, grid, b) for s in samplers for b in budgets]
        nfes = list(dict.fromkeys(r["nfe"] for r in runs))
        want = [" / ".join(str(n) for n in nfes),
                " / ".join(f"{r['fd']:.1f}" for r in runs),
                " / ".join(f"{r['kd']:.1f} ± {r['kd_se']:.1f}" for r in runs),
                " / ".join(f"{100 * r['confident']:.0f} %" for r in runs),
                " / ".join(f"{r['seconds']:.0f}" for r in runs)]
        assert cells == want, label


def test_few_step_table():
    """docs/samplers.md's few-step table: per NFE each library's best row (solver, grid, eps, FD)
    over every row of few_step_mnist.json, and the FD of both libraries' default configurations."""
    marker = "Each library's best row, and both libraries' defaults:"
    d = load(FS)
    assert_names(S, "The goal of 10 NFE is met on images.", FS)
    rows = table_after(S, marker)
    nfes = sorted({r["nfe"] for r in d["rows"] if not r["reference"]})
    assert [int(r[0]) for r in rows] == nfes
    for (nfe, *cells), n in zip(rows, nfes, strict=True):
        want = []
        for lib in ("scoresde", "k-diffusion"):
            best = min((r for r in d["rows"] if r["lib"] == lib and r["nfe"] == n and not r["reference"]),
                       key=lambda r: r["fd"])
            want += [f"`{best['sampler']}` ({best['grid']}, {best['eps']:g})", f"{best['fd']:.1f}"]
        want += [f"{fs(d, 'scoresde', 'dpm++2m', 'logsnr', 1e-3, n)['fd']:.1f}",
                 f"{fs(d, 'k-diffusion', 'dpmpp_2m', 'karras', 1e-3, n)['fd']:.1f}"]
        assert cells == want, nfe


MUTATED = {"sde.py": "`sde.py`", "samplers/": "`samplers/`", "likelihood.py": "`likelihood.py`",
           "elbo.py": "`elbo.py`", "losses.py": "`losses.py`"}


def test_mutation_summary_counts_its_list():
    """docs/testing.md's kill counts are those of its own list of every mutant (the record of
    that run: no JSON was written), per file and in all, with the rounded percentages."""
    mutants = table_after(T, "Every mutant and its outcome")
    assert all(len(m) == 6 for m in mutants)
    summary = {r[0]: r[1:] for r in table_after(T, "A mutant is *killed* when a test fails.")}
    killed, total = [0, 0], 0
    for prefix, label in MUTATED.items():
        mine = [m for m in mutants if m[1].strip("`").startswith(prefix)]
        k = [sum(m[col] == "killed" for m in mine) for col in (3, 4)]
        assert summary[label] == [f"{k[0]} / {len(mine)}", f"{k[1]} / {len(mine)}"], label
        killed, total = [killed[0] + k[0], killed[1] + k[1]], total + len(mine)
    assert len(mutants) == total
    assert summary["**all**"] == [f"**{k} / {total} ({100 * k / total:.0f} %)**" for k in killed]
