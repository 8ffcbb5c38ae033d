"""The markdown tables of ``scoresde compare`` (``report.md``) and the labels of its runs."""

from __future__ import annotations

from scoresde.samplers import SAMPLERS


def report_markdown(result: dict) -> str:
    """The two tables of ``report.md`` from a :func:`run_compare` result: each sampler run with
    the trained network beside the same run with the exact score (when there is an oracle),
    then the likelihoods."""
    floor = result["floor_sliced_w2"]
    lines = [f"# scoresde compare: {result['config']} ({result['data']})", "",
             f"Sliced W2 of an exact sample of the same size to the reference: "
             f"{min(floor):.3f}–{max(floor):.3f} over {len(floor)} draws (the floor). "
             f"Each model trained for {result['train_steps']} steps. \"exact\": the same sampler "
             f"on the same prior noise with the oracle's exact score, so its error is the "
             f"sampler's own; the ratio trained / exact is what training adds.", "",
             "| sampler | SDE | NFE | sliced W2 trained | sliced W2 exact | ratio | χ² trained | "
             "χ² exact | max abs z trained | wall s trained |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for trained, exact in paired_runs(result["runs"]):
        lines.append(_run_row(trained, exact))
    lines += ["", "| SDE | unit | PF-ODE NLL (model) | exact NLL | PF-ODE NLL (exact score) "
                  "| NFE | wall s |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["likelihood"]:
        lines.append(f"| {r['sde']} | {r['unit']} | {r['model']:.4f} ± {r['model_se']:.4f} | "
                     f"{_num(r.get('exact'), 4)} | {_num(r.get('oracle_ode'), 4)} | "
                     f"{r['nfe']} | {r['seconds']:.1f} |")
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in result["phase_seconds"].items())
    lines += ["", f"Total {result['seconds']:.0f} s wall ({phases}), "
                  f"{result['cpu_seconds']:.0f} s CPU."]
    return "\n".join(lines) + "\n"


def paired_runs(runs: list[dict]) -> list[tuple[dict, dict | None]]:
    """``(trained run, the exact-score run of the same sampler, SDE and budget or None)``."""
    exact = {_key(r): r for r in runs if r["score"] == "oracle"}
    return [(r, exact.get(_key(r))) for r in runs if r["score"] == "trained"]


def line_label(sampler: str, options: dict | None = None) -> str:
    """A sampler's name with its time grid (and PC's corrector), as legends and tables show it;
    the ODE runs say which method."""
    options = options or {}
    name = {"ode": "ode dopri5", "ode_rk4": "ode rk4"}.get(sampler, sampler)
    extras = [] if sampler == "ode" else [SAMPLERS["ode" if sampler == "ode_rk4" else sampler].grid]
    if "corrector" in options:
        extras.append(f"{options['corrector']} corrector")
    return f"{name} ({', '.join(extras)})" if extras else name


def _run_row(r: dict, exact: dict | None) -> str:
    nfe = str(r["nfe"]) if exact is None or exact["nfe"] == r["nfe"] else f"{r['nfe']} ({exact['nfe']})"
    ratio = r["sliced_w2"] / exact["sliced_w2"] if exact is not None else None
    return (f"| {_label(r)} | {r['sde']} | {nfe} | {r['sliced_w2']:.3f} | "
            f"{_num(exact and exact['sliced_w2'], 3)} | {_num(ratio)} | {_num(r['chi2'])} | "
            f"{_num(exact and exact['chi2'])} | {_num(r['max_abs_z'])} | {r['seconds']:.2f} |")


def _key(r: dict) -> tuple:
    return r["sampler"], r["sde"], r["budget"]


def _label(r: dict) -> str:
    if r["sampler"] == "ode":
        return f"ode dopri5 (tol {r['options']['rtol']:g})"
    return line_label(r["sampler"], r["options"])


def _num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def image_report(result: dict) -> str:
    """``report.md`` of an image comparison: one row per sampler run, the data's floor first."""
    f, n = result["floor"], result["n"]
    source = f"checkpoint {result['checkpoint']}" if result["checkpoint"] else "trained here"
    lines = [f"# scoresde compare: {result['config']} ({result['data']}, {source})", "",
             f"Each run draws {n} images from the same prior noise; FD and KD (± its standard "
             f"error over subsets) compare the feature-classifier features of the samples with "
             f"the test split's; \"confident\": the share the classifier labels with p > 0.9. "
             f"The floor is {n} real training images judged the same way.", "",
             "| sampler | NFE | FD | KD ± se | confident | max class dev | wall s |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| data floor (real images) | — | {f['fd']:.3g} | {f['kd']:.3g} ± {f['kd_se']:.2g} | "
             f"{f['confident']:.1%} | {f['max_class_dev']:.1%} | — |"]
    for r in result["runs"]:
        lines.append(f"| {_label(r)} | {r['nfe']} | {r['fd']:.3g} | {r['kd']:.3g} ± {r['kd_se']:.2g} | "
                     f"{r['confident']:.1%} | {r['max_class_dev']:.1%} | {r['seconds']:.1f} |")
    for r in result["likelihood"]:
        lines += ["", f"Test {r['unit']}: {r['model']:.4f} ± {r['model_se']:.4f} "
                      f"({r['nfe']} NFE, {r['seconds']:.0f} s)."]
    phases = ", ".join(f"{k} {v:.0f} s" for k, v in result["phase_seconds"].items())
    lines += ["", f"Total {result['seconds']:.0f} s wall ({phases}), "
                  f"{result['cpu_seconds']:.0f} s CPU."]
    return "\n".join(lines) + "\n"
