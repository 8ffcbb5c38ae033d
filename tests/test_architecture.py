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
    {"scoresde.shapes", "scoresde.atomic"},
    {"scoresde.sde", "scoresde.analytic", "scoresde.networks", "scoresde.dequantize", "scoresde.config",
     "scoresde.plotting"},
]
"""The ground floors: what they import must come from a floor below (or the same floor)."""


@pytest.mark.parametrize("floor", range(len(LAYERS)))
def test_ground_floors_import_only_below(floor):
    allowed = set().union(*LAYERS[: floor + 1])
    graph = imports()
    for module in sorted(LAYERS[floor]):
        for name in [m for m in graph if m == module or m.startswith(module + ".")]:
            above = {d for d in graph[name] if not any(d == a or d.startswith(a + ".") for a in allowed)}
            assert not above, f"{name} imports {sorted(above)}, above its floor"
