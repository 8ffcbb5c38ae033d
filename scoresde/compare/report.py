"""The markdown tables of ``scoresde compare`` (``report.md``) and the labels of its runs."""

from __future__ import annotations


def report_markdown(result: dict) -> str:
    """The two tables of ``report.md`` from a :func:`run_compare` result."""
    floor = result["floor_sw2"]
    lines = [f"# scoresde compare: {result['config']} ({result['data']})", "",
             f"Sliced W2 of an exact sample of the same size to the reference: "
             f"{min(floor):.3f}–{max(floor):.3f} over {len(floor)} draws (the floor).", "",
             "| sampler | SDE | NFE | wall s | sliced W2 | χ² (dof 2) | max abs z |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["runs"]:
        lines.append(f"| {_label(r)} | {r['sde']} | {r['nfe']} | {r['seconds']:.2f} | "
                     f"{r['sw2']:.3f} | {_num(r['chi2'])} | {_num(r['max_abs_z'])} |")
    lines += ["", "| SDE | unit | PF-ODE NLL (model) | exact NLL | PF-ODE NLL (exact score) "
                  "| NFE | wall s |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in result["likelihood"]:
        lines.append(f"| {r['sde']} | {r['unit']} | {r['model']:.4f} ± {r['model_se']:.4f} | "
                     f"{_num(r.get('exact'), 4)} | {_num(r.get('oracle_ode'), 4)} | "
                     f"{r['nfe']} | {r['seconds']:.1f} |")
    lines += ["", f"Total {result['seconds']:.0f} s wall, {result['cpu_seconds']:.0f} s CPU."]
    return "\n".join(lines) + "\n"


def line_label(sampler: str) -> str:
    """A sampler's name in legends: the ODE runs say which method."""
    return {"ode": "ode (dopri5)", "ode_rk4": "ode (rk4)"}.get(sampler, sampler)


def _label(r: dict) -> str:
    if r["sampler"] == "ode":
        return f"ode (dopri5, tol {r['options']['rtol']:g})"
    return line_label(r["sampler"])


def _num(value, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


