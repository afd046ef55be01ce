"""The house rules that a reader should not have to check by hand (docs/design.md).

The layer contracts themselves are import-linter's (`lint-imports`, run by scripts/test); these
are the rules it does not express: no import cycle anywhere, and modules small enough to read.
"""

from __future__ import annotations

from pathlib import Path

import grimp

SRC = Path(__file__).resolve().parents[2] / "src" / "kaipiao"
MAX_LINES = 400
MAX_ENGINE_LINES = 300


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_kaipiao() -> None:
    graph = grimp.build_graph("kaipiao")
    edges = {
        module: {
            imported
            for imported in graph.find_modules_directly_imported_by(module)
            # A package's __init__ importing its own modules is not a cycle anyone reads.
            if not module.startswith(imported + ".") and not imported.startswith(module + ".")
        }
        for module in graph.modules
    }
    assert _cycles(edges) == []


def test_modules_are_small_enough_to_read() -> None:
    too_long = {}
    for path in SRC.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        lines = len(path.read_text(encoding="utf-8").splitlines())
        limit = MAX_ENGINE_LINES if path.parent.name == "engine" else MAX_LINES
        if lines > limit:
            too_long[str(path.relative_to(SRC))] = lines
    assert too_long == {}
