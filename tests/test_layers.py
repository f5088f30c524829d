"""Dependencies point down (ARCHITECTURE.md): no layer imports one above it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "daytwo"

# What each layer may NOT import (anything above it).
FORBIDDEN = {
    "store": {"tracing", "models", "knowledge", "gateway", "evals", "runtime", "server", "cli"},
    "tracing": {"models", "knowledge", "gateway", "evals", "runtime", "server", "cli"},
    "models": {"runtime", "server", "cli"},
    "knowledge": {"runtime", "server", "cli"},
    "gateway": {"runtime", "server", "cli"},
    "evals": {"runtime", "server", "cli"},
    "runtime": {"server", "cli"},
    "testing": {"server", "cli"},
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_does_not_import_layers_above(layer: str) -> None:
    bad = []
    for path in sorted((SRC / layer).rglob("*.py")):
        for module in _imports(path):
            parts = module.split(".")
            if parts[0] == "daytwo" and len(parts) > 1 and parts[1] in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(SRC)} imports {module}")
    assert bad == []
