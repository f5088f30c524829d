"""An llm step holding an abstract prompt definition is compiled for its model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daytwo.runtime import CallableRetriever, PythonTools, Runtime, Services, StaticTelemetry
from daytwo.runtime.adapters import ModelLLM
from daytwo.runtime.loader import load_spec_file
from daytwo.runtime.samples import support_agent_path
from daytwo.store import Store
from daytwo.testing import (
    OtherFamilyModel,
    ScriptedModelServer,
    other_family_profile,
    scripted_chat_model,
)

DOCS = [
    {"id": "refund-policy.md", "text": "Annual Team plans are refunded in full within 30 days."},
    {"id": "plans.md", "text": "Team costs 8 euros per user per month."},
]


def _tools() -> PythonTools:
    tools = PythonTools()
    for name in ("orders_status_cached", "orders_status_live"):
        tools.add(
            name,
            lambda order_id, idempotency_key: {"order_id": order_id, "status": "paid"},
            capability="orders.status",
        )
    return tools


def _answer(text: str) -> dict[str, Any]:
    # The scripted family answers from what the compiled prompt put in front of it.
    assert "Customer question:\nCan I get a refund" in text
    return {"answer": "Yes, within 30 days." if "30 days" in text else "?", "needs_human": False}


@pytest.fixture
def family() -> Iterator[tuple[ScriptedModelServer, OtherFamilyModel]]:
    model = OtherFamilyModel(_answer)
    with ScriptedModelServer(responder=model) as server:
        yield server, model


def test_sample_agent_runs_on_a_family_without_system_role(
    sqlite_store: Store,
    tmp_path: Path,
    family: tuple[ScriptedModelServer, OtherFamilyModel],
) -> None:
    server, model = family
    profile = other_family_profile(server.base_url)
    spec, _ = load_spec_file(support_agent_path())
    spec = spec.model_copy(update={"model": profile.name})
    services = Services(
        tools=_tools(),
        telemetry=StaticTelemetry(),
        retriever=CallableRetriever(lambda collection, query, k: DOCS[:k]),
        llm=ModelLLM(scripted_chat_model(server.base_url, profile=profile)),
    )
    rt = Runtime(sqlite_store, services, data_dir=tmp_path)
    rt.launch()
    try:
        rt.registry.register(spec)
        run = rt.start(
            "support", {"question": "Can I get a refund for my annual plan?", "order_id": "A-1003"}
        )
    finally:
        rt.shutdown()
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["steps"]["answer"] == {
        "answer": "Yes, within 30 days.",
        "needs_human": False,
    }
    assert model.refused == 0
    sent = server.requests[-1]
    assert [m["role"] for m in sent["messages"]] == ["user"]
    text = sent["messages"][0]["content"]
    # Intent folded in, few-shot inline, slots in the definition's order, tool-call structure.
    assert text.startswith("You are a concise, friendly customer-support assistant")
    assert "Examples:" in text
    assert text.index("Help-centre passages:") < text.index("The customer's order:")
    assert json.dumps({"order_id": "A-1003", "status": "paid"}) in text
    assert sent["tool_choice"]["function"]["name"] == "answer"
    assert sent["tools"][0]["function"]["parameters"]["required"] == ["answer"]
