"""POST /v1/traces: OTLP spans of external agents land in the span store, priced, as runs."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import sqlalchemy as sa
from fastapi.testclient import TestClient
from google.rpc import status_pb2
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import NonRecordingSpan, set_span_in_context

from daytwo.models.profiles import PriceBook, load_profiles
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.tracing import setup_tracing
from daytwo.tracing.ledger import rollup

from .helpers import Keys
from .live import live_server
from .otlp_helpers import (
    PROTOBUF,
    Recorder,
    gz,
    langchain_like_trace,
    otlp_json,
    protobuf,
    trace_hex,
)

JSON = {"Content-Type": "application/json"}


def _post(client: TestClient, key: str, body: bytes, **headers: str) -> httpx.Response:
    h = {"Authorization": f"Bearer {key}", **PROTOBUF}
    h.update({k.replace("_", "-"): v for k, v in headers.items()})
    return client.post("/v1/traces", content=body, headers=h)


def _spans(store: Store) -> list[SpanRow]:
    with store.session() as s:
        return list(s.scalars(sa.select(SpanRow).order_by(SpanRow.start_time)))


def test_openinference_trace_lands_priced_as_a_run(
    client: TestClient, keys: Keys, store: Store
) -> None:
    rec = Recorder()
    with langchain_like_trace(rec):
        pass
    spans = rec.take()
    tid = trace_hex(spans[0])
    resp = client.post(
        "/v1/traces",
        content=gz(protobuf(spans)),
        headers={**Keys.header(keys.operator), **PROTOBUF, "Content-Encoding": "gzip"},
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_spans == 0
    rows = {r.name: r for r in _spans(store)}
    assert set(rows) == {"LangGraph", "retrieve_docs", "ChatOpenAI", "orders_status"}
    llm = rows["ChatOpenAI"]
    assert (llm.operation, llm.model, llm.input_tokens, llm.output_tokens) == (
        "chat",
        "gpt-4o-mini",
        120,
        30,
    )
    # gpt-4o-mini: $0.15 in / $0.60 out per million tokens.
    expected = Decimal(120) * Decimal("0.15") / 10**6 + Decimal(30) * Decimal("0.60") / 10**6
    assert llm.cost_status == "priced"
    assert Decimal(llm.cost_usd or "x") == expected
    assert rows["orders_status"].operation == "execute_tool"
    assert rows["orders_status"].attributes["gen_ai.tool.name"] == "orders_status"
    assert rows["retrieve_docs"].operation == "retrieval"
    assert rows["retrieve_docs"].attributes["daytwo.kb.hits"] == 2
    assert {r.tenant for r in rows.values()} == {"acme"}
    assert rows["LangGraph"].parent_span_id is None
    assert rows["ChatOpenAI"].parent_span_id == rows["LangGraph"].span_id
    assert rows["LangGraph"].session_id == "sess-42"

    run_id = f"otlp-{tid}"
    runs = client.get("/api/v1/runs", headers=Keys.header(keys.viewer)).json()
    [run] = [r for r in runs if r["id"] == run_id]
    assert run["agent"] == "support-bot"
    assert run["status"] == "succeeded"
    assert run["inputs"] == {"input": {"question": "where is order A-1001?"}}
    assert run["outputs"] == {"output": "It ships tomorrow."}
    assert run["tokens"] == 150
    assert Decimal(str(run["cost_usd"])) == expected
    assert run["session"] == "sess-42"  # the explorer strings the session's runs together

    explained = client.get(f"/api/v1/runs/{run_id}/explain", headers=Keys.header(keys.viewer))
    assert explained.status_code == 200
    texts = [s["text"] for s in explained.json()["steps"]]
    assert any("Called the model gpt-4o-mini (120 tokens in, 30 out" in t for t in texts)
    assert any("Called the tool orders_status" in t for t in texts)
    audit = client.post(f"/api/v1/runs/{run_id}/audit/verify", headers=Keys.header(keys.viewer))
    assert audit.status_code == 200
    assert audit.json()["ok"]
    assert [r["kind"] for r in audit.json()["records"]] == ["runs.external"]
    costs = client.get("/api/v1/costs", headers=Keys.header(keys.viewer)).json()
    assert Decimal(costs["total_usd"]) == expected
    # Another tenant sees nothing of it.
    other = Keys.header(keys.other_viewer)
    assert run_id not in [r["id"] for r in client.get("/api/v1/runs", headers=other).json()]
    assert client.get(f"/api/v1/runs/{run_id}/explain", headers=other).status_code == 404
    assert Decimal(client.get("/api/v1/costs", headers=other).json()["total_usd"]) == 0


def test_json_encoding_with_genai_spans(client: TestClient, keys: Keys, store: Store) -> None:
    rec = Recorder(service="travel-agent")
    with rec.tracer.start_as_current_span("invoke_agent travel") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        with rec.tracer.start_as_current_span("chat gpt-4o-mini") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.system", "openai")
            chat.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            chat.set_attribute("gen_ai.usage.input_tokens", 1000)
            chat.set_attribute("gen_ai.usage.output_tokens", 100)
        with rec.tracer.start_as_current_span("execute_tool book") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "book")
            tool.add_event(
                "daytwo.decision",
                {
                    "daytwo.decision.kind": "tool_choice",
                    "daytwo.decision.summary": "Chose book: the cheaper of two equal tools.",
                    "daytwo.decision.data": '{"candidates": ["book", "book_v2"]}',
                },
            )
    resp = client.post(
        "/v1/traces", content=otlp_json(rec.take()), headers={**Keys.header(keys.operator), **JSON}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"
    rows = {r.name: r for r in _spans(store)}
    chat_row = rows["chat gpt-4o-mini"]
    assert chat_row.cost_status == "priced"
    assert Decimal(chat_row.cost_usd or "x") == Decimal("0.00021")
    assert chat_row.attributes["gen_ai.provider.name"] == "openai"
    # The decision record of the tool span is explained with its run.
    run_id = f"otlp-{chat_row.trace_id}"
    steps = client.get(f"/api/v1/runs/{run_id}/explain", headers=Keys.header(keys.viewer)).json()[
        "steps"
    ]
    [decision] = [d for st in steps for d in st["decisions"]]
    assert decision["kind"] == "tool_choice"
    assert decision["summary"] == "Chose book: the cheaper of two equal tools."
    assert decision["data"] == {"candidates": ["book", "book_v2"]}


def test_unknown_price_is_loud_and_never_zero(client: TestClient, keys: Keys, store: Store) -> None:
    rec = Recorder()
    with langchain_like_trace(rec, model="acme-private-llm"):
        pass
    resp = _post(client, keys.operator, protobuf(rec.take()))
    assert resp.status_code == 200
    warning = ExportTraceServiceResponse.FromString(resp.content).partial_success
    assert warning.rejected_spans == 0
    assert "acme-private-llm" in warning.error_message
    assert "not $0" in warning.error_message
    llm = next(r for r in _spans(store) if r.name == "ChatOpenAI")
    assert (llm.cost_status, llm.cost_usd) == ("unknown", None)
    report = client.get("/api/v1/costs", headers=Keys.header(keys.viewer)).json()
    assert report["unpriced_spans"] == 1


def test_framework_span_and_gateway_span_cost_once(
    client: TestClient, keys: Keys, store: Store, settings: Settings
) -> None:
    """The framework's LLM span wraps the gateway's own chat span (same trace): once."""
    handle = setup_tracing(store, prices=PriceBook(load_profiles(settings)))
    try:
        from opentelemetry import trace

        rec = Recorder()
        with langchain_like_trace(rec, prompt=120, completion=30) as ctx:
            # What the model gateway does when the framework's HTTP call carries the
            # trace context: its own priced chat span, a child of the framework's span.
            parent = set_span_in_context(NonRecordingSpan(ctx["llm"]))
            gw = trace.get_tracer("daytwo.models").start_span("chat gpt-4o-mini", context=parent)
            gw.set_attribute("gen_ai.operation.name", "chat")
            gw.set_attribute("gen_ai.request.model", "gpt-4o-mini")
            gw.set_attribute("daytwo.model.profile", "openai/gpt-4o-mini")
            gw.set_attribute("gen_ai.usage.input_tokens", 118)
            gw.set_attribute("gen_ai.usage.output_tokens", 30)
            gw.end()
        resp = _post(client, keys.operator, protobuf(rec.take()))
        assert resp.status_code == 200
    finally:
        handle.shutdown()
    rows = {r.name: r for r in _spans(store)}
    assert rows["ChatOpenAI"].cost_status == "wrapper"
    assert rows["chat gpt-4o-mini"].cost_status == "priced"
    once = Decimal(118) * Decimal("0.15") / 10**6 + Decimal(30) * Decimal("0.60") / 10**6
    tid = rows["ChatOpenAI"].trace_id
    [by_run] = [r for r in rollup(store, "run") if r.key == f"otlp-{tid}"]
    assert by_run.cost_usd == once
    assert by_run.priced_spans == 1
    assert (
        Decimal(client.get("/api/v1/costs", headers=Keys.header(keys.viewer)).json()["total_usd"])
        == once
    )
    with store.session() as s:
        run = s.get(RunRecord, f"otlp-{tid}")
        assert run is not None
        assert Decimal(str(run.cost_usd)) == once
        assert run.tokens == 148


def test_split_batches_and_retries(client: TestClient, keys: Keys, store: Store) -> None:
    """Child spans first, the root later (as BatchSpanProcessor exports); a retried
    request stores nothing twice; a nested LLM span arriving later demotes its parent."""
    rec = Recorder()
    with langchain_like_trace(rec):
        pass
    spans = rec.take()
    root = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None]
    assert _post(client, keys.operator, protobuf(children)).status_code == 200
    tid = trace_hex(spans[0])
    with store.session() as s:
        run = s.get(RunRecord, f"otlp-{tid}")
        assert run is not None
        assert run.status == "running"
    for _ in range(2):
        assert _post(client, keys.operator, protobuf(root)).status_code == 200
    assert len(_spans(store)) == 4
    with store.session() as s:
        run = s.get(RunRecord, f"otlp-{tid}")
        assert run is not None
        assert run.status == "succeeded"
        assert run.steps_done == 4


def test_tenant_cannot_attach_to_another_tenants_trace(
    client: TestClient, store: Store, keys: Keys
) -> None:
    from daytwo.server import KeyStore

    globex_operator = KeyStore(store).create(role="operator", tenant="globex")[1]
    rec = Recorder()
    with langchain_like_trace(rec) as ctx:
        pass
    assert _post(client, keys.operator, protobuf(rec.take())).status_code == 200
    before = len(_spans(store))
    # globex sends a span into acme's trace (it learnt the trace id), claiming acme's run.
    intruder = Recorder()
    parent = set_span_in_context(NonRecordingSpan(ctx["llm"]))
    with intruder.tracer.start_as_current_span("inject", context=parent) as sp:
        sp.set_attribute("daytwo.run.id", f"otlp-{ctx['llm'].trace_id:032x}")
        sp.set_attribute("daytwo.tenant", "acme")
    with intruder.tracer.start_as_current_span("fine"):
        pass
    resp = _post(client, globex_operator, protobuf(intruder.take()))
    assert resp.status_code == 409
    status = status_pb2.Status.FromString(resp.content)
    assert "another tenant" in status.message
    assert "none of the spans were stored" in status.message
    assert len(_spans(store)) == before  # not even the span of its own trace
    # Claimed run / tenant attributes never bind: a fresh trace gets globex's own run.
    own = Recorder()
    with own.tracer.start_as_current_span("mine") as sp:
        sp.set_attribute("daytwo.run.id", f"otlp-{ctx['llm'].trace_id:032x}")
        sp.set_attribute("daytwo.tenant", "acme")
    assert _post(client, globex_operator, protobuf(own.take())).status_code == 200
    mine = next(r for r in _spans(store) if r.name == "mine")
    assert (mine.tenant, mine.run_id) == ("globex", f"otlp-{mine.trace_id}")
    assert "daytwo.tenant" not in mine.attributes


def test_bad_input_answers_otlp_status_and_stores_nothing(
    client: TestClient, keys: Keys, store: Store
) -> None:
    rec = Recorder()
    with langchain_like_trace(rec):
        pass
    good = protobuf(rec.take())

    def status(resp: httpx.Response) -> str:
        return str(status_pb2.Status.FromString(resp.content).message)

    r = _post(client, keys.operator, good[: len(good) // 2])
    assert r.status_code == 400
    assert "not a valid OTLP protobuf" in status(r)
    r = client.post(
        "/v1/traces",
        content=good,
        headers={**Keys.header(keys.operator), "Content-Type": "text/plain"},
    )
    assert r.status_code == 415
    assert "application/x-protobuf" in r.json()["message"]
    r = _post(client, keys.operator, b"\0" * (20 * 1024 * 1024))
    assert r.status_code == 413
    assert "smaller batches" in status(r)
    r = _post(client, keys.operator, gz(b"\0" * (20 * 1024 * 1024)), content_encoding="gzip")
    assert r.status_code == 413
    r = _post(client, keys.operator, b"garbage", content_encoding="gzip")
    assert r.status_code == 400
    assert "gzip" in status(r)

    # A batch of good spans with one bad one: nothing is stored.
    def with_bad(mutate: object) -> bytes:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        rec2 = Recorder()
        with langchain_like_trace(rec2):
            pass
        msg = encode_spans(rec2.take())
        mutate(msg.resource_spans[0].scope_spans[0].spans[-1])  # type: ignore[operator]
        return bytes(msg.SerializeToString())

    r = _post(client, keys.operator, with_bad(lambda sp: sp.ClearField("span_id")))
    assert r.status_code == 400
    assert "no span id" in status(r)
    r = _post(client, keys.operator, with_bad(lambda sp: setattr(sp, "trace_id", b"\1" * 5)))
    assert r.status_code == 400
    assert "invalid trace id" in status(r)

    def wrong_type(sp: object) -> None:
        kv = sp.attributes.add()
        kv.key = "llm.token_count.prompt"
        kv.value.string_value = "lots"

    r = _post(client, keys.operator, with_bad(wrong_type))
    assert r.status_code == 400
    assert "'llm.token_count.prompt' must be an integer" in status(r)
    # OTLP/JSON: a broken id, then a document of the wrong shape; errors answer in JSON.
    r = client.post(
        "/v1/traces",
        content=json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}),
        headers={**Keys.header(keys.operator), **JSON},
    )
    assert r.status_code == 400
    assert "not a hex id" in r.json()["message"]
    r = client.post("/v1/traces", content=b"[1, 2]", headers={**Keys.header(keys.operator), **JSON})
    assert r.status_code == 400
    assert r.json()["code"] == 3
    assert _spans(store) == []
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(RunRecord)) == 0


def test_auth(client: TestClient, keys: Keys) -> None:
    rec = Recorder()
    with rec.tracer.start_as_current_span("x"):
        pass
    body = protobuf(rec.take())
    r = client.post("/v1/traces", content=body, headers=PROTOBUF)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert "no API key" in status_pb2.Status.FromString(r.content).message
    r = _post(client, keys.viewer, body)
    assert r.status_code == 403
    r = client.post("/v1/traces", content=body, headers={**PROTOBUF, "X-API-Key": keys.operator})
    assert r.status_code == 200


def test_real_otlp_exporter_against_a_live_server(
    settings: Settings, store: Store, keys: Keys
) -> None:
    from daytwo.server import create_app

    app = create_app(settings, store, with_runtime=False)
    rec = Recorder()
    with langchain_like_trace(rec):
        pass
    with live_server(app) as url:
        exporter = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces",
            headers={"Authorization": f"Bearer {keys.operator}"},
            compression=None,
        )
        from opentelemetry.exporter.otlp.proto.http import Compression

        gzipped = OTLPSpanExporter(
            endpoint=f"{url}/v1/traces",
            headers={"Authorization": f"Bearer {keys.operator}"},
            compression=Compression.Gzip,
        )
        spans = rec.take()
        assert exporter.export(spans[:2]) is SpanExportResult.SUCCESS
        assert gzipped.export(spans[2:]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        gzipped.shutdown()
    assert len(_spans(store)) == 4
