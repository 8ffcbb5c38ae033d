"""The package's import graph, read from the source: no cycle, nothing imports the command line
but ``__main__``, the config schema imports no algorithm, and the layers of
``docs/architecture.md`` hold (a module imports only from its own layer or below)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "scoresde"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """``module -> the scoresde modules it imports`` (``from scoresde.x import y`` names
    ``scoresde.x.y`` when that is a module, else ``scoresde.x``)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names}
                found |= {s if s in modules else node.module for s in subs}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_no_import_cycle():
    graph = imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt):], nxt] if nxt in path else [node, nxt]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_only_main_imports_the_command_line():
    importers = sorted(m for m, deps in imports().items() if "scoresde.cli" in deps)
    assert importers == ["scoresde.__main__"]


def test_config_is_schema_only():
    """``config`` may import nothing of the package: the names it accepts are handed to it."""
    assert imports()["scoresde.config"] == set()


LAYERS = [
    {"shapes", "atomic", "config", "plotting", "networks", "checkpoint", "ema", "lr_schedule",
     "runlog", "stopping", "runlock", "score_contract", "samplers.budget",
     "samplers.multistep_updates"},
    {"sde", "analytic", "dequantize"},
    {"score", "losses", "elbo", "samplers", "metrics", "data"},
    {"likelihood", "training", "parallel", "conditional", ""},
    {"distributed"},
    {"build"},
    {"arguments", "evaluate", "compare", "inpaint_command"},
    {"cli", "__main__"},
]
"""The layers of ``docs/architecture.md``, bottom first (``""``: the package's ``__init__``); an
entry names a module or a sub-package (all its modules, unless one is listed by its own name)."""


def layer_of(module: str) -> int:
    """The layer of the longest entry naming ``module`` or a package holding it."""
    name = module.removeprefix("scoresde").removeprefix(".")
    hits = [(len(entry), k) for k, floor in enumerate(LAYERS) for entry in floor
            if name == entry or (entry and name.startswith(entry + "."))]
    if not hits:
        pytest.fail(f"{module} is in no layer of docs/architecture.md")
    return max(hits)[1]


def test_every_module_imports_only_its_layer_or_below():
    graph = imports()
    climbing = [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})"
                for m in sorted(graph) for d in sorted(graph[m]) if layer_of(d) > layer_of(m)]
    assert not climbing, "\n".join(climbing)


def test_the_documented_layers_are_the_tested_ones():
    """Every entry of :data:`LAYERS` appears in the picture of ``docs/architecture.md`` on the
    line of its layer (sub-packages written with a trailing slash)."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    picture = doc[doc.index("```text"):].split("```")[1].splitlines()
    drawn: dict[int, set[str]] = {}
    floor = None
    for line in picture:
        if line.strip()[:1].isdigit():
            floor = int(line.split()[0])
        if floor is not None:
            drawn.setdefault(floor, set()).update(line.replace("·", " ").split())
    for k, floor_entries in enumerate(LAYERS):
        for entry in floor_entries:
            names = {entry or "scoresde", f"{entry}/"}
            assert names & drawn[k], f"{entry or 'scoresde'} not drawn on layer {k}"
