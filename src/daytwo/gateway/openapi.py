"""Import an OpenAPI 3 spec: each operation becomes a tool, schemas taken from the spec.

Local ``$ref``s (``#/components/...``) are resolved; external or recursive
references are refused with a clear error. Path, query and header parameters
and the properties of a JSON object request body become the tool's arguments.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from daytwo.exceptions import InputError
from daytwo.gateway.contracts import ToolDefinition, parse_definitions

__all__ = ["import_openapi", "load_openapi", "resolve_refs"]

_METHODS = ("get", "post", "put", "patch", "delete")
_SEMVER_PREFIX = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def load_openapi(path: Path) -> dict[str, Any]:
    """Read an OpenAPI 3 document (YAML or JSON) and check its version."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"OpenAPI file {path} does not exist", hint="check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {path}: {exc}", hint="check permissions and encoding"
        ) from exc
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{path} is not valid YAML/JSON: {exc}", hint="fix the syntax") from exc
    if not isinstance(data, dict) or not str(data.get("openapi", "")).startswith("3."):
        raise InputError(
            f"{path} is not an OpenAPI 3 document (no 'openapi: 3.x' key)",
            hint="convert Swagger 2.0 specs to OpenAPI 3 first",
        )
    if not isinstance(data.get("paths"), dict) or not data["paths"]:
        raise InputError(
            f"{path} has no paths", hint="an OpenAPI spec needs at least one operation"
        )
    return data


def _lookup(doc: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise InputError(
            f"external $ref {ref!r} is not supported", hint="bundle the spec into one file first"
        )
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise InputError(f"$ref {ref!r} points nowhere", hint="fix the reference")
        node = node[part]
    return node


def resolve_refs(doc: dict[str, Any], node: Any, _stack: tuple[str, ...] = ()) -> Any:
    """``node`` with every local ``$ref`` replaced by its target."""
    if isinstance(node, dict):
        if "$ref" in node and isinstance(node["$ref"], str):
            ref = node["$ref"]
            if ref in _stack:
                raise InputError(
                    f"recursive $ref {ref!r} cannot become a tool schema",
                    hint="flatten the recursive schema for this operation",
                )
            return resolve_refs(doc, _lookup(doc, ref), (*_stack, ref))
        return {k: resolve_refs(doc, v, _stack) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve_refs(doc, v, _stack) for v in node]
    return node


def _slug(text: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", text)).strip("_")


def _version(doc: dict[str, Any]) -> str:
    m = _SEMVER_PREFIX.match(str(doc.get("info", {}).get("version", "")))
    if not m:
        return "1.0.0"
    return f"{int(m[1])}.{int(m[2] or 0)}.{int(m[3] or 0)}"


def _json_schema(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        return None
    for media, body in content.items():
        if "json" in media and isinstance(body, dict) and isinstance(body.get("schema"), dict):
            return dict(body["schema"])
    return None


def _operation(
    doc: dict[str, Any],
    path: str,
    method: str,
    op: dict[str, Any],
    common: list[Any],
    base_url: str,
    version: str,
) -> dict[str, Any]:
    op = resolve_refs(doc, op)
    name = _slug(op.get("operationId") or f"{method}_{path}")
    properties: dict[str, Any] = {}
    required: list[str] = []
    where: dict[str, str] = {}
    for param in [*resolve_refs(doc, common), *op.get("parameters", [])]:
        loc = param.get("in")
        if loc not in {"path", "query", "header"}:
            continue
        pname = param["name"]
        properties[pname] = param.get("schema", {"type": "string"})
        where[pname] = loc
        if param.get("required") or loc == "path":
            required.append(pname)
    body = op.get("requestBody")
    if isinstance(body, dict):
        schema = _json_schema(body.get("content"))
        if schema is not None:
            if schema.get("type", "object") != "object" or "properties" not in schema:
                raise _Unsupported(
                    f"its request body is a JSON {schema.get('type', 'value')} without "
                    "properties; only object bodies become tool arguments"
                )
            for pname, sub in schema["properties"].items():
                properties[pname] = sub
                where[pname] = "body"
            if body.get("required", False):
                required.extend(schema.get("required", []))
    output: dict[str, Any] = {"type": "object"}
    adapter: dict[str, Any] | None = None
    responses = op.get("responses", {})
    for code in ("200", "201", "202", "2XX", "default"):
        if code in responses and isinstance(responses[code], dict):
            found = _json_schema(responses[code].get("content"))
            if found is not None:
                output = found
                break
    if output.get("type", "object") != "object":
        # An array or a scalar answer: the tool's output is an object holding it
        # (``items`` or ``value``), shaped by an always-on adapter.
        field = "items" if output.get("type") == "array" else "value"
        output = {"type": "object", "properties": {field: output}, "required": [field]}
        adapter = {"version": 1, "always": True, "mapping": {field: "@"}}
    tags = op.get("tags") or [doc.get("info", {}).get("title", "api")]
    capability = f"{_slug(str(tags[0])).lower() or 'api'}.{name.lower()}"
    input_schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        input_schema["required"] = sorted(set(required))
    definition: dict[str, Any] = {
        "name": name,
        "capability": capability,
        "version": version,
        "description": str(op.get("summary") or op.get("description") or "")[:500],
        "input_schema": input_schema,
        "output_schema": output,
        "backend": {
            "type": "http",
            "method": method.upper(),
            "url": base_url.rstrip("/") + path,
            "params": where,
        },
    }
    if adapter is not None:
        definition["adapter"] = adapter
    return definition


class _Unsupported(Exception):
    """An operation that cannot become a tool (it is skipped and reported)."""


def import_openapi(
    doc: dict[str, Any], base_url: str, skipped: list[dict[str, str]] | None = None
) -> list[ToolDefinition]:
    """One tool definition per operation of the spec.

    An operation that cannot become a tool (say, an array request body) is left out
    and, when ``skipped`` is given, appended to it as ``{"operation", "reason"}``; the
    others are imported.
    """
    if not base_url.startswith(("http://", "https://")):
        raise InputError(
            f"base URL {base_url!r} is not http(s)", hint="pass --base-url https://..."
        )
    version = _version(doc)
    items: list[dict[str, Any]] = []
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        common = item.get("parameters", [])
        for method in _METHODS:
            if isinstance(item.get(method), dict):
                try:
                    items.append(
                        _operation(doc, path, method, item[method], common, base_url, version)
                    )
                except _Unsupported as exc:
                    if skipped is not None:
                        skipped.append(
                            {"operation": f"{method.upper()} {path}", "reason": str(exc)}
                        )
    if not items:
        raise InputError(
            "the OpenAPI spec has no operations that can become tools",
            hint="add get/post/... operations with object request bodies",
        )
    return parse_definitions(items, source="OpenAPI spec")
