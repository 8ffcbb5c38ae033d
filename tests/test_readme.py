"""The README's Python example runs as written."""

import re
from pathlib import Path

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
