"""The house's rules (spec README, "The house"), checked from the code's own imports.

- arrows point down: surfaces -> services -> store; services -> backends, config_repos;
  everything -> hive_wire; `hive_wire` imports nothing of `hive_core`; `agent/` imports
  `hive_wire` only; surfaces never import the store;
- no import circle, type-only imports included;
- nothing in `hive_core` imports `trio.testing` (tests choose inline mode through the config);
- no module over ~400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hive_core", "hive_wire")
MAX_LINES = 450


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module of ours `name` imports (anywhere in the file, TYPE_CHECKING included)."""
    is_pkg = path.name == "__init__.py"
    base = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                mod = ".".join(base[: len(base) - node.level + 1] + ([mod] if mod else []))
            # `from pkg import mod` depends on pkg.mod; `from mod import name` on mod.
            targets = [
                f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names
            ]
        for t in targets:
            while t and t not in MODULES:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if parts[0] == "hive_core" and len(parts) > 1 else parts[0]


def test_hive_wire_is_a_leaf_and_agent_imports_the_wire_only() -> None:
    for name, deps in GRAPH.items():
        if name.startswith("hive_wire"):
            assert not [d for d in deps if d.startswith("hive_core")], name
        if name.startswith("hive_core.agent"):
            bad = [d for d in deps if not d.startswith(("hive_wire", "hive_core.agent"))]
            assert not bad, (name, bad)


# The floor: small modules without I/O of their own, importable from every layer; they import
# only hive_wire and each other.
LEAVES = {"hive_core", "clock", "config", "paths", "errors", "logs", "sdnotify", "budget"}


def test_arrows_point_down() -> None:
    # What each layer may import of hive_core besides the floor (hive_wire is open to all).
    allowed = {
        "store": {"store"},
        "backends": {"backends"},
        "config_repos": {"config_repos"},
        "services": {"services", "store", "backends", "config_repos", "app"},
        "surfaces": {"surfaces", "services", "app", "daemon", "agent", "backends", "config_repos"},
        **{leaf: set() for leaf in LEAVES},
    }
    for name, deps in GRAPH.items():
        layer = _layer(name)
        if layer not in allowed:
            continue
        for dep in deps:
            if dep.startswith("hive_core") and _layer(dep) not in LEAVES | {layer}:
                assert _layer(dep) in allowed[layer], f"{name} imports {dep}"


def test_surfaces_never_import_the_store() -> None:
    for name, deps in GRAPH.items():
        if _layer(name) == "surfaces":
            assert not [d for d in deps if _layer(d) == "store"], name


def test_no_import_circle() -> None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH.get(node, ())):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                raise AssertionError("import circle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(GRAPH):
        if node not in state:
            visit(node)


def test_no_trio_testing_in_the_daemon() -> None:
    for name, path in MODULES.items():
        assert "trio.testing" not in path.read_text(), name


def test_modules_stay_small() -> None:
    big = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not big, big
