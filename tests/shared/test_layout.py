"""The source layout as a newcomer relies on it: one import namespace mapped onto
the fixed top-level folders, every subpackage installed, and dependencies that
point one way (no import cycles, lazy imports included)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]


def _packages_on_disk() -> dict[str, Path]:
    """Every importable package under the mapped folders, by its installed name."""
    found = {}
    for name, folder in PACKAGE_DIRS.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            parts = init.parent.relative_to(base).parts
            if "__pycache__" in parts:
                continue
            dotted = ".".join([name, *parts])
            # a folder mapped on its own (e.g. worklens.agent) belongs to that mapping
            owner = max((n for n in PACKAGE_DIRS if dotted == n or dotted.startswith(n + ".")),
                        key=len)
            if owner == name:
                found[dotted] = init.parent
    return found


PACKAGES = _packages_on_disk()


def _modules() -> dict[str, Path]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in folder.glob("*.py"):
            modules[package if path.stem == "__init__" else f"{package}.{path.stem}"] = path
    return modules


MODULES = _modules()


def test_every_package_on_disk_is_installed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert set(PACKAGES) - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - set(PACKAGES) == set(), "these are listed but do not exist"


def _imports(module: str, path: Path) -> set[str]:
    """The worklens modules ``module`` imports anywhere in its body (lazy ones too).
    ``from pkg import name`` counts as importing ``pkg.name`` when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {name for name in found if name in MODULES and name != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("namespace", ["worklens.collector", "worklens.agent", "worklens.common"])
def test_dependencies_point_one_way(namespace: str):
    graph = {m: _imports(m, p) for m, p in MODULES.items() if m.startswith(namespace)}
    graph = {m: {d for d in deps if d in graph} for m, deps in graph.items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_shared_code_knows_nothing_of_either_program():
    for module, path in MODULES.items():
        if module.startswith(("worklens.common", "worklens.v1")) or module == "worklens":
            deps = _imports(module, path)
            assert not [d for d in deps if d.startswith(("worklens.agent", "worklens.collector"))]


def test_the_agent_does_not_import_the_collector():
    for module, path in MODULES.items():
        if module.startswith("worklens.agent"):
            assert not [d for d in _imports(module, path) if d.startswith("worklens.collector")], \
                module


def test_the_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
