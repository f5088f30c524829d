"""Gateway fixtures: a migrated store, a gateway, captured spans, a loopback HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.gateway import Gateway
from daytwo.store import Store

_EXPORTER = InMemorySpanExporter()
_installed = False


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans finished during the test (an SDK provider is installed once per process)."""
    global _installed
    if not _installed:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            trace.set_tracer_provider(TracerProvider())
            provider = trace.get_tracer_provider()
            assert isinstance(provider, TracerProvider)
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        _installed = True
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


@pytest.fixture
def gateway(sqlite_store: Store) -> Iterator[Gateway]:
    """A gateway over a fresh SQLite store, loopback allowed for HTTP backends."""
    gw = Gateway(sqlite_store, ssrf_allow=["127.0.0.1"])
    yield gw
    gw.close()


Handler = Callable[[str, str, dict[str, str], bytes], tuple[int, dict[str, str], bytes]]


class LoopbackServer:
    """A real HTTP server on 127.0.0.1 whose answers a test scripts with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[dict[str, Any]] = []
        outer = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                outer.requests.append(
                    {"method": self.command, "path": self.path, "headers": headers, "body": body}
                )
                status, out_headers, payload = outer.handler(self.command, self.path, headers, body)
                self.send_response(status)
                for k, v in out_headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def json_response(data: Any, status: int = 200) -> tuple[int, dict[str, str], bytes]:
    """A JSON answer for a LoopbackServer handler."""
    return status, {"content-type": "application/json"}, json.dumps(data).encode()


@pytest.fixture
def http_server() -> Iterator[Callable[[Handler], LoopbackServer]]:
    """Start loopback servers; all are stopped after the test."""
    started: list[LoopbackServer] = []

    def start(handler: Handler) -> LoopbackServer:
        server = LoopbackServer(handler)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def py_tool(name: str, callable_ref: str, **extra: Any) -> dict[str, Any]:
    """A minimal python-backed tool definition."""
    return {
        "name": name,
        "capability": extra.pop("capability", "test.echo"),
        "version": extra.pop("version", "1.0.0"),
        "input_schema": extra.pop("input_schema", {"type": "object"}),
        "backend": {"type": "python", "callable": callable_ref},
        **extra,
    }


class AsgiServer:
    """A real uvicorn server for an ASGI app on 127.0.0.1 (a free port), in a thread."""

    def __init__(self, app: Any) -> None:
        import socket

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        import time

        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture
def asgi_server() -> Iterator[Callable[[Any], AsgiServer]]:
    """Serve ASGI apps with uvicorn; stopped after the test."""
    started: list[AsgiServer] = []

    def start(app: Any) -> AsgiServer:
        server = AsgiServer(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
