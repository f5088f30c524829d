"""Catalog: registration pinned by hash, versions side by side, diff, YAML and OpenAPI import."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from daytwo.exceptions import ConflictError, InputError, SchemaDefinitionError, ToolNotFound
from daytwo.gateway import Gateway, ToolDefinition, diff_definitions, load_definitions
from daytwo.gateway.openapi import import_openapi, load_openapi
from daytwo.store import Store

from .conftest import json_response, py_tool


def echo(**kw: Any) -> dict[str, Any]:
    return {"echo": kw}


def test_register_list_and_resolve_versions(store: Store) -> None:
    gw = Gateway(store)
    gw.register(py_tool("echo", "e", version="1.0.0"))
    gw.register(py_tool("echo", "e", version="1.2.0"))
    gw.register(py_tool("echo", "e", version="2.0.0", capability="test.other"))
    assert [r.version for r in gw.tools()] == ["1.0.0", "1.2.0", "2.0.0"]
    assert [r.version for r in gw.tools(major=1)] == ["1.0.0", "1.2.0"]
    assert [r.version for r in gw.tools(capability="test.other")] == ["2.0.0"]
    assert gw.get("echo").version == "2.0.0"
    assert gw.get("echo", "1").version == "1.2.0"
    assert gw.get("echo@1.0.0").version == "1.0.0"
    gw.register_python("e", echo)
    assert gw.call("echo", {"a": 1}, version="1").version == "1.2.0"
    with pytest.raises(ToolNotFound, match="no version '3'"):
        gw.get("echo", "3")
    with pytest.raises(ToolNotFound, match="unknown tool 'nope'"):
        gw.call("nope", {})
    gw.close()


def test_changed_definition_under_same_version_is_refused(store: Store) -> None:
    gw = Gateway(store)
    first = gw.register(py_tool("echo", "e"))
    again = gw.register(py_tool("echo", "e"))
    assert again.definition_hash == first.definition_hash
    with pytest.raises(ConflictError, match="different definition"):
        gw.register(py_tool("echo", "e", description="sneaky change"))
    assert len(gw.tools()) == 1
    gw.close()


def test_register_many_is_all_or_nothing(sqlite_store: Store) -> None:
    gw = Gateway(sqlite_store)
    gw.register(py_tool("b", "e"))
    defs = [
        ToolDefinition.model_validate(py_tool("a", "e")),
        ToolDefinition.model_validate(py_tool("b", "e", description="changed")),
    ]
    with pytest.raises(ConflictError):
        gw.register_many(defs)
    assert [r.name for r in gw.tools()] == ["b"]


def test_yaml_loading_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_definitions(bad)
    bad.write_text(yaml.safe_dump(py_tool("x", "e", version="1.0")))
    with pytest.raises(InputError, match="version"):
        load_definitions(bad)
    bad.write_text(yaml.safe_dump({**py_tool("x", "e"), "input_schema": {"type": "nope"}}))
    with pytest.raises(SchemaDefinitionError, match="input_schema is not valid JSON Schema"):
        load_definitions(bad)
    bad.write_text(yaml.safe_dump({**py_tool("x", "e"), "backend": {"type": "ftp"}}))
    with pytest.raises(InputError, match="backend"):
        load_definitions(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_definitions(tmp_path / "missing.yaml")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"tools": [py_tool("x", "e"), py_tool("y", "e")]}))
    assert [d.name for d in load_definitions(good)] == ["x", "y"]


def _def(**over: Any) -> ToolDefinition:
    base = {
        "name": "risk",
        "capability": "risk.score",
        "version": "1.0.0",
        "input_schema": {
            "type": "object",
            "required": ["account"],
            "properties": {"account": {"type": "string"}},
        },
        "output_schema": {
            "type": "object",
            "required": ["risk_score"],
            "properties": {"risk_score": {"type": "number"}, "note": {"type": "string"}},
        },
        "expectations": {"risk_score": {"type": "number", "minimum": 0, "maximum": 1}},
        "backend": {"type": "python", "callable": "e"},
    }
    base.update(over)
    return ToolDefinition.model_validate(base)


def test_diff_classifies_breaking_and_compatible() -> None:
    a = _def()
    assert diff_definitions(a, a).kind == "identical"
    optional_arg = _def(
        version="1.1.0",
        input_schema={
            "type": "object",
            "required": ["account"],
            "properties": {"account": {"type": "string"}, "region": {"type": "string"}},
        },
    )
    d = diff_definitions(a, optional_arg)
    assert d.kind == "compatible"
    assert d.version_ok
    required_arg = _def(
        input_schema={
            "type": "object",
            "required": ["account", "region"],
            "properties": {"account": {"type": "string"}, "region": {"type": "string"}},
        }
    )
    d = diff_definitions(a, required_arg)
    assert d.kind == "breaking"
    assert any("region: new required argument" in r for r in d.breaking)
    assert not d.version_ok
    assert "bump the major" in d.version_note
    category = _def(
        version="2.0.0",
        output_schema={
            "type": "object",
            "required": ["risk_score"],
            "properties": {"risk_score": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"]}},
        },
        expectations={"risk_score": {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"]}},
    )
    d = diff_definitions(a, category)
    assert d.kind == "breaking"
    assert d.version_ok
    assert any("output.risk_score: type" in r for r in d.breaking)
    assert any("output.note: removed" in r for r in d.breaking)
    percent = _def(expectations={"risk_score": {"type": "number", "minimum": 0, "maximum": 100}})
    assert any("risk_score.maximum" in r for r in diff_definitions(a, percent).breaking)


SPEC = """
openapi: 3.0.3
info: {title: Inventory, version: "2.1"}
paths:
  /items/{sku}:
    parameters:
      - {name: sku, in: path, required: true, schema: {type: string}}
    get:
      operationId: getItem
      tags: [inventory]
      parameters:
        - $ref: '#/components/parameters/Warehouse'
      responses:
        "200":
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Item'}
  /items:
    post:
      operationId: createItem
      tags: [inventory]
      requestBody:
        required: true
        content:
          application/json:
            schema:
              type: object
              required: [sku]
              properties:
                sku: {type: string}
                qty: {$ref: '#/components/schemas/Qty'}
      responses:
        "201":
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Item'}
components:
  parameters:
    Warehouse: {name: warehouse, in: query, schema: {type: string}}
  schemas:
    Qty: {type: integer, minimum: 0}
    Item:
      type: object
      properties:
        sku: {type: string}
        qty: {$ref: '#/components/schemas/Qty'}
"""


def test_openapi_import_resolves_refs(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC)
    defs = {d.name: d for d in import_openapi(load_openapi(path), "http://127.0.0.1:9")}
    get = defs["getItem"]
    assert get.version == "2.1.0"
    assert get.capability == "inventory.getitem"
    assert get.input_schema["required"] == ["sku"]
    assert get.input_schema["properties"]["warehouse"] == {"type": "string"}
    assert get.output_schema["properties"]["qty"] == {"type": "integer", "minimum": 0}
    assert get.backend.type == "http"
    assert get.backend.url == "http://127.0.0.1:9/items/{sku}"
    assert get.backend.params == {"sku": "path", "warehouse": "query"}
    create = defs["createItem"]
    assert create.backend.method == "POST"
    assert create.input_schema["properties"]["qty"] == {"type": "integer", "minimum": 0}
    assert create.input_schema["required"] == ["sku"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("swagger: '2.0'\npaths: {}\n", "not an OpenAPI 3 document"),
        ("openapi: 3.0.0\npaths: {}\n", "has no paths"),
        (
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n"
            "          content:\n            application/json:\n"
            "              schema: {$ref: 'other.yaml#/X'}\n",
            "external \\$ref",
        ),
        (
            "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      responses:\n        '200':\n"
            "          content:\n            application/json:\n"
            "              schema: {$ref: '#/components/schemas/N'}\n"
            "components:\n  schemas:\n    N:\n      type: object\n"
            "      properties: {next: {$ref: '#/components/schemas/N'}}\n",
            "recursive \\$ref",
        ),
    ],
)
def test_openapi_bad_input(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        import_openapi(load_openapi(path), "http://127.0.0.1:9")


LISTS = """
openapi: 3.0.3
info: {title: Orders, version: "1.0"}
paths:
  /orders:
    get:
      operationId: listOrders
      responses:
        "200":
          content:
            application/json:
              schema: {type: array, items: {type: object, properties: {id: {type: string}}}}
  /orders/count:
    get:
      operationId: countOrders
      responses:
        "200":
          content:
            application/json:
              schema: {type: integer, minimum: 0}
  /orders/bulk:
    post:
      operationId: bulkCreate
      requestBody:
        content:
          application/json:
            schema: {type: array, items: {type: string}}
      responses:
        "200":
          content:
            application/json:
              schema: {type: object}
"""


def test_openapi_array_and_scalar_answers_become_callable_tools(
    tmp_path: Path, gateway: Gateway, http_server: Any
) -> None:
    def handler(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        if path == "/orders":
            return json_response([{"id": "o1"}, {"id": "o2"}])
        return json_response(2)

    server = http_server(handler)
    path = tmp_path / "orders.yaml"
    path.write_text(LISTS)
    skipped: list[dict[str, str]] = []
    defs = import_openapi(load_openapi(path), server.url, skipped)
    # One unsupported operation is reported; the rest of the spec still imports.
    assert [d.name for d in defs] == ["listOrders", "countOrders"]
    assert skipped == [
        {
            "operation": "POST /orders/bulk",
            "reason": "its request body is a JSON array without properties; only object "
            "bodies become tool arguments",
        }
    ]
    gateway.register_many(defs)
    assert gateway.call("listOrders", {}).output == {"items": [{"id": "o1"}, {"id": "o2"}]}
    assert gateway.call("countOrders", {}).output == {"value": 2}


def _ranged(input_prop: dict[str, Any], output_prop: dict[str, Any]) -> ToolDefinition:
    return _def(
        input_schema={"type": "object", "properties": {"qty": {"type": "integer", **input_prop}}},
        output_schema={
            "type": "object",
            "properties": {"risk_score": {"type": "number", **output_prop}},
        },
    )


def test_diff_sees_range_length_and_pattern_changes() -> None:
    base = _ranged({"minimum": 1, "maximum": 10}, {"minimum": 0, "maximum": 1})
    # Inputs: a narrower range breaks callers, a wider one does not.
    narrower_in = _ranged({"minimum": 2, "maximum": 10}, {"minimum": 0, "maximum": 1})
    assert diff_definitions(base, narrower_in).breaking == ["input.qty: minimum 1 -> 2"]
    wider_in = _ranged({"minimum": 1, "maximum": 100}, {"minimum": 0, "maximum": 1})
    report = diff_definitions(base, wider_in)
    assert report.kind == "compatible"
    assert "input.qty: maximum 10 -> 100" in report.compatible
    # Outputs: a wider range (0..1 -> 0..100, the article's unit change) breaks consumers.
    wider_out = _ranged({"minimum": 1, "maximum": 10}, {"minimum": 0, "maximum": 100})
    assert diff_definitions(base, wider_out).breaking == ["output.risk_score: maximum 1 -> 100"]
    unbounded_out = _ranged({"minimum": 1, "maximum": 10}, {"minimum": 0})
    assert diff_definitions(base, unbounded_out).kind == "breaking"
    patterned = _def(
        input_schema={
            "type": "object",
            "required": ["account"],
            "properties": {"account": {"type": "string", "pattern": "^A[0-9]+$"}},
        }
    )
    assert any("pattern" in r for r in diff_definitions(_def(), patterned).breaking)
    assert diff_definitions(patterned, _def()).kind == "compatible"


def test_tool_names_are_the_listed_tools_names(store: Store) -> None:
    gw = Gateway(store)
    for name, version, capability in [
        ("zeta", "1.0.0", "test.a"),
        ("Alpha", "1.0.0", "test.b"),
        ("alpha", "1.0.0", "test.a"),
        ("alpha", "2.0.0", "test.b"),
        ("mid-1", "1.0.0", "test.a"),
    ]:
        gw.register(py_tool(name, "e", version=version, capability=capability))
    for capability in (None, "test.a", "test.b", "test.none"):
        listed: list[str] = []
        for r in gw.tools(capability=capability):
            if r.name not in listed:
                listed.append(r.name)
        assert gw.tool_names(capability) == listed
