"""The README's Python example runs as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def _bash_lines(text: str) -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_readme_commands_install_what_they_use_and_ci_runs_the_test_command():
    """The first command installs torch and the package before running the main job; the test
    command installs the dev extras (pytest) before calling pytest; ``.ci/run`` runs that line."""
    lines = _bash_lines(README.read_text())
    main = next(line for line in lines if "scoresde compare" in line)
    assert main.index("pip install torch") < main.index("pip install -e .") < main.index("scoresde compare")
    test = next(line for line in lines if "pytest" in line)
    assert test.index('pip install -e ".[dev') < test.index("python -m pytest")
    ci = (README.parent / ".ci" / "run").read_text().splitlines()
    assert test in [line.strip() for line in ci]


@pytest.mark.parametrize(("results", "label"), [("mnist_quality.json", ""),
                                               ("mnist_quality_vp_2250.json", " (2,250)")])
def test_image_model_figures_match_the_recorded_run(results, label):
    """Every figure of the README's image-model table is the recorded benchmark's
    (``benchmarks/results/mnist_quality.json`` for the 1,600-step rows, ``..._vp_2250.json`` for
    the row labelled ``VP (2,250)``), formatted as the table formats it."""
    import json

    record = json.loads((README.parent / "benchmarks" / "results" / results).read_text())
    text = README.read_text()
    section = text[text.index("## Train your first image model"):]
    names = {"vp": "VP", "subvp": "sub-VP", "ve": "VE"}
    for sde, res in record["sdes"].items():
        r = res["rows"][-1]
        row = next(line for line in section.splitlines() if line.startswith(f"| {names[sde]}{label} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == f"{r['step']:,}"
        assert cells[3] == f"{r['fd']:.1f} ({r['fd_floor']:.2f})"
        assert cells[5] == f"{r['confident']:.1%}"
        assert cells[7] == f"{r['bpd']:.2f} ± {r['bpd_se']:.2f}"
