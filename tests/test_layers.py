"""The layering rules of docs/architecture.md, read from the source (AST, not grep):

* SQL is executed only in ``store/`` (the sample project under review is not our code);
* nothing outside ``engine/`` reaches into the engine's parts (``engine.writer``, ``.book`` …):
  the service uses the engine's own methods;
* no feature imports the client (``Lab``): features receive the service;
* module-level imports between subpackages form no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "stagent_lab"
ENGINE_PARTS = frozenset(
    {"tasks", "writer", "store", "inbox", "queue", "runner", "events", "book", "timers",
     "hooks", "clock", "redact", "reconciled", "task_loader", "loop", "rules", "rule_index"}
)  # fmt: skip
FEATURES = ("memory", "handoffs", "workflows", "schedules", "channels", "usage", "chat")


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel.startswith("sample_project/"):
            continue
        out.append((rel, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))))
    return out


MODULES = _modules()


def _chain(node: ast.AST) -> list[str]:
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return names[::-1]


def test_sql_runs_only_in_the_store():
    found = []
    for rel, tree in MODULES:
        if rel.startswith("store/"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("execute", "executemany")
            ):
                found.append(f"{rel}:{node.lineno}")
    assert found == []


def test_nothing_outside_the_engine_reaches_into_its_parts():
    found = []
    for rel, tree in MODULES:
        if rel.startswith("engine/"):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ENGINE_PARTS:
                chain = _chain(node.value)
                if chain and chain[-1] == "engine":
                    found.append(f"{rel}:{node.lineno} {'.'.join(chain)}.{node.attr}")
    assert found == []


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, ast.Name | ast.Attribute) and _chain(test)[-1:] == ["TYPE_CHECKING"]


def _imports(tree: ast.Module, top_level_only: bool) -> set[str]:
    """Modules of ours imported at run time (``if TYPE_CHECKING:`` blocks are annotations)."""
    out: set[str] = set()

    def walk(nodes: list[ast.stmt], depth: int) -> None:
        for node in nodes:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                out.update(_targets(node.module, [a.name for a in node.names]))
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.If) and _is_type_checking(node):
                walk(node.orelse, depth)
            elif isinstance(node, ast.If | ast.Try):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    walk(getattr(node, block, []), depth)
            elif isinstance(node, ast.ExceptHandler) or (
                not top_level_only and hasattr(node, "body")
            ):
                walk(node.body, depth + 1)

    walk(tree.body, 0)
    return {m for m in out if m.startswith("stagent_lab")}


def _targets(module: str, names: list[str]) -> list[str]:
    """``from a.b import c`` imports the module ``a.b.c`` when that is a module, else ``a.b``."""
    base = PKG.parent / module.replace(".", "/")
    subs = [f"{module}.{n}" for n in names if (base / f"{n}.py").exists() or (base / n).is_dir()]
    return subs or [module]


@pytest.mark.parametrize("feature", FEATURES)
def test_no_feature_imports_the_client(feature):
    found = [
        f"{rel}: {mod}"
        for rel, tree in MODULES
        if rel.startswith(f"{feature}/")
        for mod in _imports(tree, top_level_only=False)
        if mod.startswith("stagent_lab.client") or mod == "stagent_lab.lab"
    ]
    assert found == []


def test_module_level_imports_form_no_cycle():
    """Imports executed when a module loads (not inside functions, not for type checking)."""
    graph: dict[str, set[str]] = {}
    for rel, tree in MODULES:
        name = "stagent_lab." + rel.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        graph[name] = {m for m in _imports(tree, top_level_only=True) if m != name}
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []
