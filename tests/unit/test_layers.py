"""The layers of ARCHITECTURE.md, checked on the source: every mlmagic import (at the top of a
module or inside a function; not those only for type checkers) points down, and no circle of
imports remains, except the ones still listed here to be removed."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "mlmagic"
# What each layer may import, besides itself.
MAY_IMPORT = {
    "base": set(),
    "backends": {"base"},
    "deploy": {"base", "backends"},
    "runners": {"base"},
    "azure": {"base", "backends", "deploy", "runners"},  # a platform package
    "databricks": {"base", "backends", "deploy", "runners"},  # a platform package
    "core": {"base", "backends", "deploy", "runners", "azure", "databricks"},
    "panel": {"base", "core", "deploy"},
    "magics": {"base", "core", "deploy", "panel", "azure"},  # azure: --auth's choices
    "__init__": {"base", "core", "magics", "panel"},
    "__main__": {"base", "core"},
}
STILL_UPWARD: set[tuple[str, str]] = set()
STILL_CIRCLES: list[list[str]] = []


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test)
                       for node in ast.walk(block)}
        names = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mlmagic"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    known = (PACKAGE.parent / full.replace(".", "/")).with_suffix(".py")
                    names.add(full if known.exists() or known.with_suffix("").is_dir()
                              else node.module)
            elif isinstance(node, ast.Import):
                names |= {a.name for a in node.names if a.name.startswith("mlmagic")}
        found[_module_name(path)] = names
    return found


def _layer(module: str) -> str:
    parts = module.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_imports_point_down():
    upward = {(source, target) for source, targets in _imports().items() for target in targets
              if _layer(target) != _layer(source)
              and _layer(target) not in MAY_IMPORT[_layer(source)]}
    assert upward == STILL_UPWARD


def test_no_new_circle_of_imports():
    graph = _imports()
    circles, index, low, stack, on_stack = [], {}, {}, [], set()

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                circles.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert sorted(circles) == sorted(STILL_CIRCLES)
