"""The agent and the server stay apart, and the agent's modules import each other without a cycle.

The import graph comes from grimp (every import statement in the source, including those inside functions,
which is where this code base puts its slow imports), so the test needs no camroll module to be imported.
"""

from __future__ import annotations

import functools

import grimp
import pytest

AGENT = "camroll.agent"
SERVER = "camroll.server"


@functools.cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("camroll", cache_dir=None)


def _chain(graph: grimp.ImportGraph, importer: str, imported: str) -> list[str] | None:
    return graph.find_shortest_chain(importer, imported, as_packages=True)


@pytest.mark.parametrize(("importer", "imported"), [(AGENT, SERVER), (SERVER, AGENT)])
def test_the_agent_and_the_server_never_import_each_other(importer: str, imported: str) -> None:
    chain = _chain(_graph(), importer, imported)
    assert chain is None, f"{importer} reaches {imported}: {' -> '.join(chain or ())}"


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component with more than one module (or a module importing itself),
    each sorted, found with Tarjan's algorithm (iterative: the graph may be deep)."""
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
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1 or node in edges.get(node, ()):
                    found.append(sorted(component))
    return found


def _agent_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    mods = {m for m in graph.modules if m == AGENT or m.startswith(AGENT + ".")}
    return {m: graph.find_modules_directly_imported_by(m) & mods for m in mods}


def test_no_import_cycle_inside_the_agent() -> None:
    found = cycles(_agent_edges(_graph()))
    assert found == [], "import cycles inside camroll.agent: " + "; ".join(" <-> ".join(c) for c in found)


def test_the_cycle_finder_finds_cycles() -> None:
    # The check above can only fail if this one can.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
