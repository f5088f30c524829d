"""A span processor that stores finished spans and their decision records in the DB.

``on_end`` only queues the span (cheap, in the caller's thread); a daemon thread
turns queued spans into rows and writes them in batches. ``force_flush`` writes
everything queued so far before returning.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode
from sqlalchemy import JSON, Connection, Table

from daytwo.store import Store
from daytwo.store.base import UTCDateTime
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import attributes as A
from daytwo.tracing.pricing import PriceSource, span_cost

__all__ = ["WRAPPER", "StoreSpanProcessor", "span_to_rows"]

WRAPPER = "wrapper"
"""``cost_status`` of a cost-looking span that wraps another one (never counted)."""

log = logging.getLogger(__name__)

_SPANS: Table = SpanRow.__table__  # type: ignore[assignment]
_DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]


def _ts(ns: int | None) -> datetime:
    return datetime.fromtimestamp((ns or 0) / 1e9, UTC)


def _str(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    return str(value)[:limit]


def _optional_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany straight to the driver: per-row SQLAlchemy bind processing costs more
    than the insert itself. Values are converted exactly as the column types would
    (UTC datetimes; JSON text on SQLite, jsonb on PostgreSQL); tests read them back
    through the ORM on both backends."""
    columns = list(rows[0])
    json_idx = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    time_idx = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        from psycopg.types.json import Jsonb
    params: list[list[Any]] = []
    for row in rows:
        values = [row[c] for c in columns]
        for i in json_idx:
            if values[i] is not None:
                values[i] = json.dumps(values[i]) if sqlite else Jsonb(values[i])
        if sqlite:
            for i in time_idx:
                if values[i] is not None:
                    values[i] = (
                        values[i]
                        .astimezone(UTC)
                        .replace(tzinfo=None)
                        .isoformat(" ", "microseconds")
                    )
        params.append(values)
    mark = "?" if sqlite else "%s"
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join(mark for _ in columns)})"
    )
    conn.exec_driver_sql(sql, [tuple(v) for v in params])


def span_to_rows(
    span: ReadableSpan, prices: PriceSource | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``trace_spans`` row and ``trace_decisions`` rows of one finished span."""
    ctx = span.get_span_context()
    assert ctx is not None
    trace_id = format(ctx.trace_id, "032x")
    span_id = format(ctx.span_id, "016x")
    # One copy into a plain dict: BoundedAttributes lookups are slow.
    attrs: dict[str, Any] = {
        k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()
    }
    start = _ts(span.start_time)
    end = _ts(span.end_time or span.start_time)
    cost = span_cost(attrs, start, prices)
    agent = attrs.get(A.AGENT_NAME)
    if agent is not None and attrs.get(A.AGENT_VERSION) is not None:
        agent = f"{agent}@{attrs.get(A.AGENT_VERSION)}"
    status = span.status.status_code
    row = {
        "span_id": span_id,
        "trace_id": trace_id,
        "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
        "name": span.name[:255],
        "kind": span.kind.name.lower(),
        "scope": _str(span.instrumentation_scope.name if span.instrumentation_scope else None, 128),
        "start_time": start,
        "end_time": end,
        "duration_ms": ((span.end_time or 0) - (span.start_time or 0)) / 1e6,
        "status": "error" if status is StatusCode.ERROR else "ok",
        "status_message": span.status.description,
        "attributes": attrs,
        "operation": _str(attrs.get(A.OPERATION), 32),
        "model": _str(attrs.get(A.RESPONSE_MODEL) or attrs.get(A.REQUEST_MODEL), 255),
        "run_id": _str(attrs.get(A.RUN_ID), 64),
        "session_id": _str(attrs.get(A.SESSION_ID), 128),
        "agent": _str(agent, 255),
        "principal": _str(attrs.get(A.PRINCIPAL), 255),
        "tenant": _str(attrs.get(A.TENANT), 255),
        "input_tokens": _optional_int(attrs.get(A.USAGE_INPUT)),
        "output_tokens": _optional_int(attrs.get(A.USAGE_OUTPUT)),
        "cost_usd": None if cost is None or cost.usd is None else str(cost.usd),
        "cost_status": None if cost is None else cost.status,
    }
    decisions: list[dict[str, Any]] = []
    for event in span.events:
        if event.name != A.DECISION_EVENT:
            continue
        ev: Mapping[str, Any] = event.attributes or {}
        try:
            data = json.loads(str(ev.get(A.DECISION_DATA) or "{}"))
        except json.JSONDecodeError:
            data = {"raw": str(ev.get(A.DECISION_DATA))}
        decisions.append(
            {
                "trace_id": trace_id,
                "span_id": span_id,
                "at": _ts(event.timestamp),
                "kind": str(ev.get(A.DECISION_KIND) or "unknown")[:64],
                "summary": str(ev.get(A.DECISION_SUMMARY) or ""),
                "data": data if isinstance(data, dict) else {"value": data},
            }
        )
    return row, decisions


class StoreSpanProcessor(SpanProcessor):
    """Stores finished spans (and decision events) in the system of record, in batches."""

    def __init__(
        self,
        store: Store,
        *,
        prices: PriceSource | None = None,
        max_batch: int = 512,
        interval_s: float = 0.5,
        max_queue: int = 100_000,
    ) -> None:
        self.store = store
        self.prices = prices
        self.max_batch = max_batch
        self.interval_s = interval_s
        self.max_queue = max_queue
        self._queue: deque[ReadableSpan] = deque()
        self._cost_below: set[str] = set()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._stopped = False
        self.dropped = 0
        self._worker = threading.Thread(target=self._run, name="daytwo-span-store", daemon=True)
        self._worker.start()
        # A forked child (pre-fork servers) has no worker thread: start its own.
        os.register_at_fork(after_in_child=self._after_fork)

    def _after_fork(self) -> None:
        if self._stopped:
            return
        self._queue = deque()
        self._cost_below = set()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self.store.engine.dispose(close=False)  # never share the parent's connections
        self._worker = threading.Thread(target=self._run, name="daytwo-span-store", daemon=True)
        self._worker.start()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Nothing to do when a span starts."""

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span; the worker stores it."""
        if self._stopped:
            return
        if len(self._queue) >= self.max_queue:
            # The DB cannot keep up (or is down): drop rather than grow without bound.
            self.dropped += 1
            return
        self._queue.append(span)
        if len(self._queue) >= self.max_batch:
            self._wake.set()

    def _drain(self) -> list[ReadableSpan]:
        batch: list[ReadableSpan] = []
        while self._queue:
            try:
                batch.append(self._queue.popleft())
            except IndexError:  # pragma: no cover - raced with another drain
                break
        return batch

    def _mark_wrapper(self, row: dict[str, Any]) -> None:
        """A cost span with a cost span inside it is a wrapper: its cost is not counted.

        Spans arrive in end order, so children come before their parents: remember
        which parents have a cost span below them.
        """
        span_id, parent = row["span_id"], row["parent_span_id"]
        below = span_id in self._cost_below
        self._cost_below.discard(span_id)
        if row["cost_status"] is not None:
            if below:
                row["cost_status"], row["cost_usd"] = WRAPPER, None
            below = True
        if below and parent is not None:
            if len(self._cost_below) > 100_000:  # parents in other processes never end here
                self._cost_below.clear()
            self._cost_below.add(parent)

    def _write(self, spans: Sequence[ReadableSpan]) -> None:
        if not spans:
            return
        rows: list[dict[str, Any]] = []
        decisions: list[dict[str, Any]] = []
        for span in spans:
            row, decs = span_to_rows(span, self.prices)
            self._mark_wrapper(row)
            rows.append(row)
            decisions.extend(decs)
        # Core executemany (not the ORM's bulk path): spans are write-once rows.
        with self.store.engine.begin() as conn:
            _insert_many(conn, _SPANS, rows)
            if decisions:
                _insert_many(conn, _DECISIONS, decisions)

    def _flush_once(self) -> bool:
        with self._write_lock:
            batch = self._drain()
            try:
                self._write(batch)
            except Exception:
                # Tracing must never break the traced program: log and drop the batch.
                self.dropped += len(batch)
                log.exception("could not store %d spans", len(batch))
                return False
            return True

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._queue:
                self._flush_once()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Store every span queued so far; False when a batch could not be written."""
        ok = True
        while self._queue:
            ok = self._flush_once() and ok
        return ok

    def shutdown(self) -> None:
        """Store what is queued and stop the worker."""
        self.force_flush()
        self._stopped = True
        self._wake.set()
        self._worker.join(timeout=5)
