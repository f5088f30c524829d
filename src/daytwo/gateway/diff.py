"""Classify the change between two tool definitions as breaking or compatible.

Rules (from the agent's point of view, which sends inputs and reads outputs):

* input: a new required argument, a removed argument, a changed type, a
  narrowed enum or a removed ``additionalProperties`` allowance is breaking;
  a new optional argument or a widened enum is compatible.
* output: a removed or no-longer-required field, a changed type or a widened
  enum is breaking; a new field is compatible.
* expectations: a changed unit, type, range or enum of an output field is
  breaking (the same number now means something else).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from daytwo.gateway.contracts import ToolDefinition, parse_semver

__all__ = ["ContractDiff", "diff_definitions"]


@dataclass
class ContractDiff:
    """The classification of a change and the reasons for it."""

    kind: Literal["breaking", "compatible", "identical"]
    breaking: list[str] = field(default_factory=list)
    compatible: list[str] = field(default_factory=list)
    version_ok: bool = True
    version_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "breaking": self.breaking,
            "compatible": self.compatible,
            "version_ok": self.version_ok,
            "version_note": self.version_note,
        }


def _types(schema: dict[str, Any]) -> set[str]:
    t = schema.get("type")
    if t is None:
        return set()
    return {t} if isinstance(t, str) else set(t)


_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def _bounds(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    direction: Literal["input", "output"],
    out: ContractDiff,
) -> None:
    """Range, length and pattern changes: narrower inputs and wider outputs break callers."""
    for key in (*_LOWER, *_UPPER):
        o, n = old.get(key), new.get(key)
        if o == n or isinstance(o, bool) or isinstance(n, bool):
            continue
        lower = key in _LOWER
        narrower = n is not None and (o is None or (n > o if lower else n < o))
        what = f"{path}: {key} {o!r} -> {n!r}"
        if (direction == "input") == narrower:
            out.breaking.append(what)
        else:
            out.compatible.append(what)
    for key in ("pattern", "format", "const"):
        o, n = old.get(key), new.get(key)
        if o == n:
            continue
        what = f"{path}: {key} {o!r} -> {n!r}"
        loosened = n is None  # removed: inputs accept more, outputs may be anything
        tightened = o is None  # added: inputs accept less, outputs promise more
        if (direction == "input" and loosened) or (direction == "output" and tightened):
            out.compatible.append(what)
        else:
            out.breaking.append(what)


def _compare(
    old: dict[str, Any],
    new: dict[str, Any],
    path: str,
    direction: Literal["input", "output"],
    out: ContractDiff,
) -> None:
    old_t, new_t = _types(old), _types(new)
    if old_t and new_t and old_t != new_t:
        widened = old_t < new_t
        if direction == "input" and widened:
            out.compatible.append(f"{path}: accepts more types {sorted(new_t)}")
        else:
            out.breaking.append(f"{path}: type {sorted(old_t)} -> {sorted(new_t)}")
    _bounds(old, new, path, direction, out)
    if "enum" in old or "enum" in new:
        old_e = {repr(v) for v in old.get("enum", [])} if "enum" in old else None
        new_e = {repr(v) for v in new.get("enum", [])} if "enum" in new else None
        if old_e != new_e:
            narrower = new_e is not None and (old_e is None or not old_e <= new_e)
            wider = old_e is not None and (new_e is None or not new_e <= old_e)
            if (direction == "input" and narrower) or (direction == "output" and wider):
                out.breaking.append(
                    f"{path}: enum changed {sorted(old_e or [])} -> {sorted(new_e or [])}"
                )
            else:
                out.compatible.append(f"{path}: enum changed compatibly")
    old_p: dict[str, Any] = old.get("properties", {}) or {}
    new_p: dict[str, Any] = new.get("properties", {}) or {}
    old_r, new_r = set(old.get("required", [])), set(new.get("required", []))
    for name in sorted(set(old_p) | set(new_p)):
        sub = f"{path}.{name}"
        if name in old_p and name not in new_p:
            out.breaking.append(f"{sub}: removed")
        elif name not in old_p:
            if direction == "input" and name in new_r:
                out.breaking.append(f"{sub}: new required argument")
            else:
                out.compatible.append(f"{sub}: added")
        else:
            _compare(old_p[name], new_p[name], sub, direction, out)
    for name in sorted(new_r - old_r):
        if name in old_p and direction == "input":
            out.breaking.append(f"{path}.{name}: now required")
    for name in sorted(old_r - new_r):
        if direction == "output":
            out.breaking.append(f"{path}.{name}: no longer always present")
        else:
            out.compatible.append(f"{path}.{name}: now optional")
    if (
        direction == "input"
        and old.get("additionalProperties", True) is not False
        and new.get("additionalProperties", True) is False
    ):
        out.breaking.append(f"{path}: no longer accepts extra arguments")
    if "items" in old and "items" in new and isinstance(old["items"], dict):
        _compare(old["items"], new["items"], f"{path}[]", direction, out)


def diff_definitions(a: ToolDefinition, b: ToolDefinition) -> ContractDiff:
    """How ``b`` differs from ``a`` for an agent written against ``a``."""
    out = ContractDiff(kind="identical")
    _compare(a.input_schema, b.input_schema, "input", "input", out)
    _compare(a.output_schema, b.output_schema, "output", "output", out)
    for name in sorted(set(a.expectations) | set(b.expectations)):
        old, new = a.expectations.get(name), b.expectations.get(name)
        if old == new:
            continue
        if old is None:
            out.compatible.append(f"expectation {name}: added")
            continue
        if new is None:
            out.compatible.append(f"expectation {name}: removed")
            continue
        for attr in ("type", "unit", "minimum", "maximum", "enum", "nullable", "format"):
            if getattr(old, attr) != getattr(new, attr):
                out.breaking.append(
                    f"expectation {name}.{attr}: {getattr(old, attr)!r} -> {getattr(new, attr)!r}"
                )
    if a.capability != b.capability:
        out.breaking.append(f"capability {a.capability} -> {b.capability}")
    if a.backend != b.backend or a.adapter != b.adapter or a.policy != b.policy:
        out.compatible.append("backend, adapter or policy changed (contract unchanged)")
    if a.description != b.description:
        out.compatible.append("description changed")
    if out.breaking:
        out.kind = "breaking"
    elif out.compatible:
        out.kind = "compatible"
    if (
        a.name == b.name
        and out.kind == "breaking"
        and parse_semver(a.version)[0] == parse_semver(b.version)[0]
    ):
        out.version_ok = False
        out.version_note = (
            f"breaking change within major {parse_semver(a.version)[0]}: bump the major version"
        )
    return out
