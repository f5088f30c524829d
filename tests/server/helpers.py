"""Helpers shared by the server tests."""

from __future__ import annotations

from dataclasses import dataclass

from daytwo.server import KeyStore
from daytwo.store import Store


@dataclass(frozen=True)
class Keys:
    """Full keys of each role in tenant ``acme`` and an admin and viewer of tenant ``globex``."""

    admin: str
    operator: str
    viewer: str
    other_admin: str
    other_viewer: str

    @staticmethod
    def header(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


def make_keys(store: Store) -> Keys:
    ks = KeyStore(store)
    return Keys(
        admin=ks.create(role="admin", tenant="acme", name="acme admin")[1],
        operator=ks.create(role="operator", tenant="acme", name="acme operator")[1],
        viewer=ks.create(role="viewer", tenant="acme", name="acme viewer")[1],
        other_admin=ks.create(role="admin", tenant="globex", name="globex admin")[1],
        other_viewer=ks.create(role="viewer", tenant="globex", name="globex viewer")[1],
    )


SUPPORT_ANSWER = '{"answer": "Your order A-1001 ships tomorrow.", "needs_human": false}'


def sample_services(model_base_url: str, audit: object) -> object:
    """Services for the sample support agent: scripted LLM, Python tools, a tiny retriever."""
    from daytwo.models import load_profiles
    from daytwo.runtime import CallableRetriever, PythonTools, Services, StaticTelemetry
    from daytwo.runtime.adapters import ModelLLM
    from daytwo.testing import scripted_chat_model

    priced = load_profiles().get("openai/gpt-4o-mini")
    tools = PythonTools()
    tools.add(
        "orders_status_cached",
        lambda order_id, idempotency_key: {"order_id": order_id, "status": "shipped"},
        capability="orders.status",
    )
    tools.add(
        "orders_status_live",
        lambda order_id, idempotency_key: {"order_id": order_id, "status": "shipped"},
        capability="orders.status",
        cost_usd=0.001,
    )
    docs = [{"id": "d1", "text": "Orders ship within two days.", "score": 1.0}]
    return Services(
        tools=tools,
        telemetry=StaticTelemetry(),
        retriever=CallableRetriever(lambda collection, query, k: docs[:k]),
        llm=ModelLLM(scripted_chat_model(model_base_url, profile=priced)),
        audit=audit,
    )


def support_spec() -> object:
    from importlib import resources

    from daytwo.runtime import parse_spec_text

    text = (resources.files("daytwo.runtime.samples") / "support.yaml").read_text()
    # The scripted model stands in for a priced profile, so costs show real dollars.
    text = text.replace("model: local/smollm2-135m", "model: openai/gpt-4o-mini")
    assert "openai/gpt-4o-mini" in text
    return parse_spec_text(text)
