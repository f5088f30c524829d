"""Install daytwo's TracerProvider: spans go to the DB and, optionally, to an OTLP endpoint.

Other layers only call ``opentelemetry.trace.get_tracer("daytwo.<layer>")``: before
:func:`setup_tracing` their spans are no-ops, afterwards they are stored. The global
provider can be set only once per process, so daytwo installs one provider with a
switchable processor; calling :func:`setup_tracing` again with the same store returns
the same handle, with another store it re-points the processor.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from daytwo._version import __version__
from daytwo.exceptions import ConfigError
from daytwo.store import Store
from daytwo.store.wal import wal_file
from daytwo.tracing.attribution import current_attribution
from daytwo.tracing.audit import configure_audit
from daytwo.tracing.content import configure_content
from daytwo.tracing.interop import InteropExporter
from daytwo.tracing.pricing import PriceSource
from daytwo.tracing.processor import StoreSpanProcessor
from daytwo.tracing.writer import WriterProcess

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = ["TracingHandle", "current_handle", "otlp_headers", "otlp_traces_url", "setup_tracing"]


class _SwitchProcessor(SpanProcessor):
    """Forwards to the processors of the active handle (replaceable at run time)."""

    def __init__(self) -> None:
        self._targets: tuple[SpanProcessor, ...] = ()
        self._starters: tuple[SpanProcessor, ...] = ()

    @property
    def targets(self) -> tuple[SpanProcessor, ...]:
        """The processors spans go to."""
        return self._targets

    @targets.setter
    def targets(self, targets: tuple[SpanProcessor, ...]) -> None:
        # on_start runs for every span in the traced thread: skip processors that
        # do not override it (the store's and the OTLP batch processor's).
        self._starters = tuple(t for t in targets if type(t).on_start is not SpanProcessor.on_start)
        self._targets = targets

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        attribution = current_attribution()
        if attribution:
            # Attributes the span was created with, or sets later, win.
            own = span.attributes or {}
            span.set_attributes({k: v for k, v in attribution.items() if k not in own})
        for target in self._starters:
            target.on_start(span, parent_context=parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for target in self.targets:
            target.on_end(span)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(t.force_flush(timeout_millis) for t in self.targets)

    def shutdown(self) -> None:
        for target in self.targets:
            target.shutdown()
        self.targets = ()


@dataclass
class TracingHandle:
    """What :func:`setup_tracing` installed; ``flush`` before reading spans back."""

    store: Store
    provider: TracerProvider
    store_processor: StoreSpanProcessor
    otlp_endpoint: str | None = None
    extra: tuple[SpanProcessor, ...] = field(default=())
    active: bool = True

    @property
    def writer(self) -> str:
        """``"process"`` when a writer process stores the spans, else ``"thread"``."""
        return "process" if isinstance(self.store_processor.sink, WriterProcess) else "thread"

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Write every finished span to the DB (and push it to OTLP); True on success."""
        ok = self.store_processor.force_flush(int(timeout_s * 1000))
        for proc in self.extra:
            ok = proc.force_flush(int(timeout_s * 1000)) and ok
        return ok

    def shutdown(self) -> None:
        """Flush and detach: later spans are no longer stored by this handle."""
        global _HANDLE
        with _LOCK:
            if not self.active:
                return
            self.active = False
            if _SWITCH.targets and _SWITCH.targets[0] is self.store_processor:
                _SWITCH.targets = ()
            if _HANDLE is self:
                _HANDLE = None
        self.store_processor.shutdown()
        for proc in self.extra:
            proc.shutdown()


_LOCK = threading.Lock()
_SWITCH = _SwitchProcessor()
_PROVIDER: TracerProvider | None = None
_HANDLE: TracingHandle | None = None


def otlp_traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (``http://host:4318`` → ``.../v1/traces``)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else f"{endpoint}/v1/traces"


def otlp_headers(settings: Settings | None) -> dict[str, str] | None:
    """The ``otlp_headers`` setting as a dict (ConfigError when it is not name=value pairs)."""
    if settings is None or settings.otlp_headers is None:
        return None
    from opentelemetry.util.re import parse_env_headers

    text = settings.otlp_headers.get_secret_value()
    headers = parse_env_headers(text, liberal=True)
    if text.strip() and not headers:
        raise ConfigError(
            "otlp_headers is not a list of name=value pairs",
            hint="use e.g. DAYTWO_OTLP_HEADERS='Authorization=Basic%20cGs6c2s='",
        )
    return dict(headers)


def _provider() -> TracerProvider:
    global _PROVIDER
    if _PROVIDER is not None:
        return _PROVIDER
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        # The application installed its own SDK provider: add ours to it.
        provider = current
    else:
        provider = TracerProvider(
            resource=Resource.create({"service.name": "daytwo", "service.version": __version__})
        )
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:  # pragma: no cover - lost a race
            other = trace.get_tracer_provider()
            assert isinstance(other, TracerProvider)
            provider = other
    provider.add_span_processor(_SWITCH)
    _PROVIDER = provider
    return provider


def current_handle() -> TracingHandle | None:
    """The active handle, if tracing is set up in this process."""
    return _HANDLE


def setup_tracing(
    store: Store,
    settings: Settings | None = None,
    otlp_endpoint: str | None = None,
    *,
    prices: PriceSource | None = None,
    writer: Literal["thread", "process"] | None = None,
) -> TracingHandle:
    """Store spans in ``store`` (and export to OTLP); idempotent for the same arguments.

    ``otlp_endpoint`` (default ``settings.otlp_endpoint``) is an OTLP/HTTP base URL such
    as ``http://127.0.0.1:4318``. With ``settings``, the audit signing key in
    ``<data_dir>/audit_ed25519.key`` is loaded (created when absent; refused when
    ``audit_key_fingerprint`` pins another key) and becomes the
    default signer of :class:`~daytwo.tracing.audit.AuditLog`, so appends are
    checkpointed periodically. ``prices`` prices model-call spans as they are stored;
    without it they are stored ``cost_unknown`` until ``daytwo costs reprice``.
    ``writer`` (default ``settings.trace_writer``, else ``"thread"``) chooses where spans
    become rows: ``"process"`` starts a writer process (:mod:`daytwo.tracing.writer`),
    which needs a store other processes can open (a SQLite file or PostgreSQL).
    """
    global _HANDLE
    mode = writer or (settings.trace_writer if settings is not None else "thread")
    if mode == "process" and store.is_sqlite and wal_file(store.url) is None:
        raise ConfigError(
            "trace_writer 'process' needs a database another process can open; "
            f"{store.url!r} is in memory",
            hint="use a SQLite file or PostgreSQL, or trace_writer 'thread'",
        )
    endpoint = otlp_endpoint or (settings.otlp_endpoint if settings is not None else None)
    headers = otlp_headers(settings)
    if settings is not None:
        configure_audit(settings)
        configure_content(settings)
    with _LOCK:
        provider = _provider()
        old = _HANDLE
        if (
            old is not None
            and old.active
            and old.store is store
            and old.otlp_endpoint == endpoint
            and (prices is None or old.store_processor.prices is prices)
            and old.writer == mode
        ):
            return old
        extra: tuple[SpanProcessor, ...] = ()
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=otlp_traces_url(endpoint), headers=headers)
            extra = (BatchSpanProcessor(InteropExporter(exporter, prices)),)
        sink = WriterProcess(store) if mode == "process" else None
        processor = StoreSpanProcessor(store, prices=prices, sink=sink)
        handle = TracingHandle(store, provider, processor, endpoint, extra)
        _SWITCH.targets = (processor, *extra)
        _HANDLE = handle
    if old is not None and old.active:
        old.active = False
        old.store_processor.shutdown()
        for proc in old.extra:
            proc.shutdown()
    return handle
