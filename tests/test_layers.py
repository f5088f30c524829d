"""Dependencies point down (ARCHITECTURE.md), and no import runs in a circle.

The import graph is grimp's (the library behind import-linter): every ``import`` of
``src/daytwo``, at module level or inside a function, and those under
``if TYPE_CHECKING:`` too -- a cycle that only the type checker sees is still two
modules that cannot be understood (or split) one without the other.
"""

from __future__ import annotations

import grimp
import pytest

_LAYERS = ("store", "tracing", "models", "knowledge", "gateway", "evals", "runtime")
_ABOVE_ALL = {*_LAYERS, "server", "cli", "testing", "sdk"}

# What each layer may NOT import (anything above it), directly or through another module.
FORBIDDEN = {
    "exceptions": _ABOVE_ALL | {"settings"},
    "settings": _ABOVE_ALL,
    "store": {"tracing", "models", "knowledge", "gateway", "evals", "runtime", "server", "cli"},
    "tracing": {"models", "knowledge", "gateway", "evals", "runtime", "server", "cli"},
    "models": {"runtime", "server", "cli"},
    "knowledge": {"runtime", "server", "cli"},
    "gateway": {"runtime", "server", "cli"},
    "evals": {"runtime", "server", "cli"},
    "runtime": {"server", "cli"},
    "testing": {"server", "cli"},
}


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # cache_dir=None: no .grimp_cache folder in the working tree.
    return grimp.build_graph("daytwo", exclude_type_checking_imports=False, cache_dir=None)


def _chain(graph: grimp.ImportGraph, importer: str, imported: str) -> str:
    chain = graph.find_shortest_chain(importer=importer, imported=imported)
    return " -> ".join(chain or (importer, imported))


def module_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Every import ``a -> b`` for which ``b`` leads back to ``a``, as the cycle it closes."""
    found: set[str] = set()
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            if graph.chain_exists(importer=imported, imported=importer):
                found.add(f"{importer} -> {_chain(graph, imported, importer)}")
    return sorted(found)


def package_cycles(graph: grimp.ImportGraph) -> list[str]:
    """Cycles between the sub-packages and modules of each package, taken as wholes."""
    found: list[str] = []
    for package in sorted(m for m in graph.modules if graph.find_children(m)):
        for importer, imported in sorted(graph.nominate_cycle_breakers(package)):
            back = graph.find_shortest_chains(
                importer=imported, imported=importer, as_packages=True
            )
            shown = "; ".join(" -> ".join(c) for c in sorted(back)) or "?"
            found.append(f"in {package}: {importer} -> {imported}, back: {shown}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_layers_above(graph: grimp.ImportGraph, layer: str) -> None:
    bad = [
        _chain(graph, f"daytwo.{layer}", f"daytwo.{above}")
        for above in sorted(FORBIDDEN[layer])
        if graph.chain_exists(
            importer=f"daytwo.{layer}", imported=f"daytwo.{above}", as_packages=True
        )
    ]
    assert bad == []


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    assert module_cycles(graph) == []


def test_no_import_cycle_between_packages(graph: grimp.ImportGraph) -> None:
    assert package_cycles(graph) == []


def test_the_cycle_checks_find_a_cycle() -> None:
    """The two checks above report a cycle when there is one (they can fail)."""
    made = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.d"):
        made.add_module(module)
    made.add_import(importer="pkg.a", imported="pkg.b")
    made.add_import(importer="pkg.b", imported="pkg.a")
    made.add_import(importer="pkg.sub.c", imported="pkg.d")
    made.add_import(importer="pkg.d", imported="pkg.sub")
    assert module_cycles(made) == ["pkg.a -> pkg.b -> pkg.a", "pkg.b -> pkg.a -> pkg.b"]
    assert len(package_cycles(made)) >= 2  # a <-> b, and sub <-> d as packages
    made.remove_import(importer="pkg.b", imported="pkg.a")
    made.remove_import(importer="pkg.d", imported="pkg.sub")
    assert module_cycles(made) == []
    assert package_cycles(made) == []
