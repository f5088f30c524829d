"""JSON Schema helpers of the repair ladder: a shape to prompt with, bounds, a token budget.

- :func:`render_shape` writes a schema as a compact JSON-like template
  (``{"age": <integer 18..99>, "tags": [<string>, 1-3 items]}``). Small models copy a
  JSON Schema instead of answering with an instance of it; a template they fill in.
- :func:`bounded_schema` adds ``maxLength`` to unbounded strings and ``maxItems`` to
  unbounded arrays. Every instance of the bounded schema is an instance of the original
  one, so constraining decoding with it never admits an answer the validator rejects; it
  stops a grammar-constrained model that loops inside a string or an array.
- :func:`token_budget` is an upper estimate of the tokens an instance of a *bounded*
  schema can take (one token per character at worst, plus whitespace), so a re-ask with
  that ``max_tokens`` cannot be cut off by the length limit again.
"""

from __future__ import annotations

import copy
import json
from typing import Any

__all__ = ["bounded_schema", "render_shape", "token_budget"]

# Longest JSON number llama.cpp's JSON grammar admits (sign, 16 + 16 digits, exponent).
_NUMBER_CHARS = 40
# Tokens a whitespace slot of llama.cpp's grammar may take ("\n" then up to 20 blanks).
_SPACE_TOKENS = 3


def _resolve(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow local ``$ref``s (``#/$defs/Name``), as Pydantic writes them."""
    seen = 0
    while "$ref" in node and seen < 32:
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        node = target if isinstance(target, dict) else {}
        seen += 1
    return node


def _range(node: dict[str, Any]) -> str:
    lo = node.get("minimum", node.get("exclusiveMinimum"))
    hi = node.get("maximum", node.get("exclusiveMaximum"))
    if lo is None and hi is None:
        return ""
    return f" {'' if lo is None else lo}..{'' if hi is None else hi}"


def render_shape(schema: dict[str, Any]) -> str:
    """A compact template of the instances of ``schema`` (to show a model, not to validate)."""
    return _shape(schema, schema, 0)


def _shape(schema: dict[str, Any], at: dict[str, Any], depth: int) -> str:
    node = _resolve(at, schema)
    if depth > 8:
        return "<value>"
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        # "a" | "b" gets copied verbatim by small models; a placeholder gets filled in.
        return f"<one of {', '.join(json.dumps(e) for e in node['enum'])}>"
    for key in ("anyOf", "oneOf"):
        if key in node:
            return " | ".join(_shape(schema, sub, depth + 1) for sub in node[key])
    kind = node.get("type")
    if isinstance(kind, list):
        return " | ".join(_shape(schema, {**node, "type": k}, depth + 1) for k in kind)
    if kind == "object" or "properties" in node:
        props = node.get("properties") or {}
        required = set(node.get("required") or [])
        fields = [
            f"{json.dumps(k)}: {_shape(schema, v, depth + 1)}"
            + ("" if k in required else " (optional)")
            + (f" /* {v['description']} */" if isinstance(v, dict) and "description" in v else "")
            for k, v in props.items()
        ]
        return "{" + ", ".join(fields) + "}"
    if kind == "array":
        # One item, no ", ..." or bounds: small models copy such text into the answer.
        return f"[{_shape(schema, node.get('items') or {}, depth + 1)}]"
    if kind in ("integer", "number"):
        return f"<{kind}{_range(node)}>"
    if kind == "string":
        keys = ("format", "pattern", "minLength", "maxLength")
        facets = [f"{k} {node[k]}" for k in keys if k in node]
        return f"<string{', ' + ', '.join(facets) if facets else ''}>"
    if kind in ("boolean", "null"):
        return "true | false" if kind == "boolean" else "null"
    return "<value>"


def bounded_schema(schema: dict[str, Any], max_string: int, max_items: int) -> dict[str, Any]:
    """A copy of ``schema`` whose strings and arrays all have an upper bound."""
    out = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for sub in node:
                walk(sub)
            return
        if not isinstance(node, dict):
            return
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        no_values = "enum" in node or "const" in node or "$ref" in node
        if "string" in kinds and not no_values and "maxLength" not in node:
            node["maxLength"] = max(max_string, int(node.get("minLength", 0)))
        if "array" in kinds and "maxItems" not in node:
            node["maxItems"] = max(max_items, int(node.get("minItems", 0)))
        for value in node.values():
            walk(value)

    walk(out)
    return out


def token_budget(schema: dict[str, Any]) -> int:
    """Upper estimate of the output tokens of an instance of a bounded ``schema``."""
    return 2 * _SPACE_TOKENS + _budget(schema, schema, 0)


def _budget(schema: dict[str, Any], at: dict[str, Any], depth: int) -> int:
    node = _resolve(at, schema)
    if depth > 8:
        return 64
    if "const" in node:
        return len(json.dumps(node["const"]))
    if "enum" in node:
        return max((len(json.dumps(e)) for e in node["enum"]), default=4)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return max(_budget(schema, sub, depth + 1) for sub in node[key])
    kind = node.get("type")
    if isinstance(kind, list):
        return max(_budget(schema, {**node, "type": k}, depth + 1) for k in kind)
    if kind == "object" or "properties" in node:
        total = 2
        for key, sub in (node.get("properties") or {}).items():
            total += len(json.dumps(key)) + 2 + 2 * _SPACE_TOKENS
            total += _budget(schema, sub, depth + 1)
        return total
    if kind == "array":
        items = int(node.get("maxItems", 8))
        per_item = _budget(schema, node.get("items") or {}, depth + 1) + 1 + _SPACE_TOKENS
        return 2 + items * per_item
    if kind == "string":
        # Escapes (\uXXXX) aside, a string of n characters takes at most n + 2 tokens.
        return int(node.get("maxLength", 256)) + 2
    if kind in ("integer", "number"):
        return _NUMBER_CHARS
    return 5
