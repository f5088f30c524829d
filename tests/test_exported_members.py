"""The public API is exactly what daytwo.__all__ lists (httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import types
from typing import Any

import daytwo


def test_all_names_exist_and_are_public() -> None:
    for name in daytwo.__all__:
        assert hasattr(daytwo, name), name
    exported = {
        name
        for name in dir(daytwo)
        if not name.startswith("_") and not isinstance(getattr(daytwo, name), type(daytwo))
    }
    assert exported == set(daytwo.__all__) - {"__version__"}


FACADES = (
    "daytwo",
    "daytwo.exceptions",
    "daytwo.store",
    "daytwo.tracing",
    "daytwo.models",
    "daytwo.knowledge",
    "daytwo.gateway",
    "daytwo.evals",
    "daytwo.runtime",
    "daytwo.server",
    "daytwo.testing",
    "daytwo.sdk",
)


def colliding_names(modules: dict[str, Any]) -> dict[str, list[str]]:
    """Public names that two facades export as different objects."""
    seen: dict[str, dict[int, str]] = {}
    for name, module in modules.items():
        for member in getattr(module, "__all__", ()):
            value = getattr(module, member)
            seen.setdefault(member, {}).setdefault(id(value), name)
    return {member: sorted(by_id.values()) for member, by_id in seen.items() if len(by_id) > 1}


def test_facade_names_mean_one_thing() -> None:
    """``Price``, ``ToolStats``, ``AgentRegistry``...: one name, one class, whichever facade."""
    facades = {name: importlib.import_module(name) for name in FACADES}
    for name, module in facades.items():
        for member in getattr(module, "__all__", ()):
            assert hasattr(module, member), f"{name}.{member}"
    assert colliding_names(facades) == {}


def test_a_collision_is_seen() -> None:
    one, two = types.ModuleType("one"), types.ModuleType("two")
    one.__all__, two.__all__ = ["Price", "Same"], ["Price", "Same"]  # type: ignore[attr-defined]
    one.Price, two.Price = type("Price", (), {}), type("Price", (), {})  # type: ignore[attr-defined]
    one.Same = two.Same = object()  # type: ignore[attr-defined]
    assert colliding_names({"one": one, "two": two}) == {"Price": ["one", "two"]}
