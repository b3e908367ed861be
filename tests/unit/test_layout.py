"""The house rules, read off the source: one package per user or layer, imports one way, no circles.

    cli → backfill / daemon / analyst → exchange / store → config, errors, domain, logs, metrics

The simulator imports nothing of the collector's; only cli starts it. Imports inside functions
count too (a lazy import is still an edge); ``if TYPE_CHECKING:`` imports as well.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "collector"
SHARED = {"config", "errors", "domain", "logs", "metrics"}
TOP_LEVEL = SHARED | {"__init__", "__main__"}
# What each part may import besides itself and the shared modules.
ALLOWED = {
    "exchange": set(),
    "store": set(),
    "backfill": {"exchange", "store"},
    "daemon": {"exchange", "store"},
    "analyst": {"exchange", "store", "backfill"},  # repair re-fetches through the backfill
    "simulator": set(),
    "cli": {"exchange", "store", "backfill", "daemon", "analyst", "simulator"},
}


def part(module: str) -> str:
    """collector.daemon.trades -> daemon; collector.config -> config."""
    return module.split(".")[1] if module.count(".") >= 1 else module


@functools.cache
def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def imports(path: Path) -> set[str]:
    """The collector modules ``path`` imports (``from pkg import mod`` names the module mod)."""
    known = modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "collector" or node.module.startswith("collector."):
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("collector."))
    return found


def test_every_module_sits_in_a_package_named_for_its_user_or_layer():
    loose = [p.stem for p in PACKAGE.glob("*.py") if p.stem not in TOP_LEVEL]
    assert not loose, loose
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(ALLOWED)
    for name in ALLOWED:
        assert ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())), name


def test_imports_run_one_way():
    wrong = []
    for name, path in modules().items():
        here = part(name)
        if here == "__main__":  # `python -m collector`: the command itself
            continue
        for target in imports(path):
            there = part(target)
            if there == here or there in SHARED:
                continue
            if here in SHARED or there not in ALLOWED.get(here, set()):
                wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_the_shared_modules_import_no_package():
    for name in SHARED:
        targets = {part(t) for t in imports(PACKAGE / f"{name}.py")}
        assert targets <= SHARED, (name, targets)


def test_no_import_circle_between_modules():
    mods = modules()
    graph = defaultdict(set)
    for name, path in mods.items():
        graph[name] = imports(path)
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt not in mods or nxt == node or nxt == "collector":
                continue
            if state.get(nxt) == 1:
                cycle.extend([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*trail, nxt]):
                return True
        state[node] = 2
        return False

    for name in mods:
        if state.get(name) is None and visit(name, [name]):
            break
    assert not cycle, " -> ".join(cycle)
