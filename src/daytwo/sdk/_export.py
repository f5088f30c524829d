"""``init``: OTLP export of this process's spans to a daytwo server (OpenTelemetry SDK)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from daytwo.exceptions import InputError

__all__ = ["Connection", "connection", "current_connection", "flush", "init", "shutdown"]


@dataclass(frozen=True)
class Connection:
    """Where :func:`init` sends spans and scores, and the agent's name there."""

    url: str
    api_key: str
    service_name: str | None = None

    @property
    def traces_url(self) -> str:
        """The OTLP/HTTP traces endpoint of the server."""
        return f"{self.url}/v1/traces"


class _Switch(SpanProcessor):
    """Added to the tracer provider once; :func:`init` points it at a new exporter."""

    def __init__(self) -> None:
        self.target: SpanProcessor | None = None

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        target = self.target
        if target is not None:
            target.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        target = self.target
        return True if target is None else target.force_flush(timeout_millis)

    def shutdown(self) -> None:
        target, self.target = self.target, None
        if target is not None:
            target.shutdown()


_LOCK = threading.Lock()
_SWITCH = _Switch()
_PROVIDER: TracerProvider | None = None
_CONNECTION: Connection | None = None


def _provider(service_name: str | None) -> TracerProvider:
    global _PROVIDER
    if _PROVIDER is not None:
        return _PROVIDER
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current  # the application (or a framework) installed one: add to it
    else:
        attrs = {"service.name": service_name} if service_name else {}
        provider = TracerProvider(resource=Resource.create(attrs))
        trace.set_tracer_provider(provider)
        other = trace.get_tracer_provider()
        if isinstance(other, TracerProvider):
            provider = other
    provider.add_span_processor(_SWITCH)
    _PROVIDER = provider
    return provider


def init(
    url: str,
    api_key: str,
    *,
    service_name: str | None = None,
    max_export_batch_size: int = 512,
    schedule_delay_millis: int = 1000,
) -> Connection:
    """Send this process's OpenTelemetry spans to the daytwo server at ``url``.

    ``url`` is the server's base URL (``http://127.0.0.1:8000``), ``api_key`` a daytwo
    key with role operator (``daytwo keys create --role operator --tenant T``).
    ``service_name`` names the agent in daytwo's run list: it becomes the resource's
    ``service.name`` when the process has no tracer provider yet, and is set on the
    spans of :func:`~daytwo.sdk.observe` (which wins over the resource's).
    Spans of any instrumentation (OpenInference, pydantic-ai, the GenAI conventions)
    and of :func:`daytwo.sdk.observe` are exported in batches over OTLP/HTTP
    (protobuf, gzip). Calling ``init`` again re-points the export.
    """
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise InputError(f"{url!r} is not an http(s) URL", hint="pass e.g. http://127.0.0.1:8000")
    if not api_key.startswith("dt_"):
        raise InputError(
            "the API key does not look like a daytwo key",
            hint="create one with `daytwo keys create --role operator --tenant <tenant>`",
        )
    global _CONNECTION
    conn = Connection(base, api_key, service_name)
    exporter = OTLPSpanExporter(
        endpoint=conn.traces_url,
        headers={"Authorization": f"Bearer {api_key}"},
        compression=Compression.Gzip,
    )
    processor = BatchSpanProcessor(
        exporter,
        max_export_batch_size=max_export_batch_size,
        schedule_delay_millis=schedule_delay_millis,
    )
    with _LOCK:
        _provider(service_name)
        old, _SWITCH.target = _SWITCH.target, processor
        _CONNECTION = conn
    if old is not None:
        old.shutdown()
    return conn


def connection() -> Connection:
    """The connection :func:`init` set up, or InputError when it was not called."""
    if _CONNECTION is None:
        raise InputError(
            "daytwo.sdk is not initialised",
            hint="call daytwo.sdk.init(url, api_key) first",
        )
    return _CONNECTION


def current_connection() -> Connection | None:
    """The connection :func:`init` set up, or None."""
    return _CONNECTION


def flush(timeout_s: float = 30.0) -> bool:
    """Export every finished span now; True when the server accepted them."""
    return _SWITCH.force_flush(int(timeout_s * 1000))


def shutdown() -> None:
    """Export what is left and stop exporting (spans after this are not sent)."""
    global _CONNECTION
    with _LOCK:
        _SWITCH.shutdown()
        _CONNECTION = None
