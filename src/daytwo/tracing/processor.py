"""A span processor that stores finished spans and their decision records in the DB.

``on_end`` only queues the span (cheap, in the caller's thread); a daemon thread
turns queued spans into rows and writes them in batches. ``force_flush`` writes
everything queued so far before returning.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import chain
from typing import Any, Protocol

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import SpanKind, StatusCode
from sqlalchemy import JSON, Connection, Table

from daytwo.store import Store
from daytwo.store.base import UTCDateTime
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import attributes as A
from daytwo.tracing.pricing import CompiledPrice, Price, PriceSource, span_cost, token_cost

_orjson_dumps: Callable[[Any], bytes] | None
try:
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - orjson is a dependency; json still works
    _orjson_dumps = None

__all__ = [
    "COLUMNS",
    "WRAPPER",
    "RowWriter",
    "SpanRecord",
    "SpanSink",
    "StoreSpanProcessor",
    "span_record",
    "span_to_rows",
]

WRAPPER = "wrapper"
"""``cost_status`` of a cost-looking span that wraps another one (never counted)."""

log = logging.getLogger(__name__)

_SPANS: Table = SpanRow.__table__  # type: ignore[assignment]
_DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ts(ns: int | None) -> datetime:
    """Nanoseconds since the epoch, truncated to the microsecond (exact, no float)."""
    return _EPOCH + timedelta(microseconds=(ns or 0) // 1000)


def _dumps(value: Any) -> str:
    """JSON text (orjson when installed: several times faster than ``json``)."""
    if _orjson_dumps is not None:
        try:
            return _orjson_dumps(value).decode()
        except TypeError:  # a value orjson refuses (e.g. an int beyond 64 bits)
            pass
    return json.dumps(value, default=str)


def _str(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value if len(value) <= limit else value[:limit]
    return str(value)[:limit]


def _optional_int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes without copying them.

    ``span.attributes`` is a read-only proxy over ``BoundedAttributes``, whose every
    lookup takes a lock and goes through ``collections.abc``; an ended span's attributes
    are immutable, so reading the SDK's own dict is safe and several times faster.
    """
    raw = getattr(span, "_attributes", None)
    if isinstance(raw, BoundedAttributes):
        return raw._dict
    return span.attributes or {}


_MISS = object()


class _PriceCache:
    """Asks the price source once per model and second, not once per span.

    A price source such as the model layer's ``PriceBook`` scans the profile's dated
    prices on each call; a batch of spans mostly falls in
    the same second. Prices are looked up at the span's start time truncated to the
    second (price changes take effect on whole seconds, in practice on dates).
    """

    def __init__(self, source: PriceSource) -> None:
        self.source = source
        self._prices: dict[tuple[str, datetime], Price | None] = {}
        self._seconds: dict[int, datetime] = {}
        self._compiled: dict[tuple[str, int], tuple[Price, Rates] | None] = {}

    def second(self, ns: int) -> datetime:
        """The UTC datetime of the whole second ``ns`` falls in (cached)."""
        sec = ns // 1_000_000_000
        at = self._seconds.get(sec)
        if at is None:
            if len(self._seconds) > 64:
                self._seconds.clear()
            at = self._seconds[sec] = datetime.fromtimestamp(sec, UTC)
        return at

    def price(self, model: str, at: datetime, /) -> Price | None:
        """The source's price of ``model`` at ``at``, asked once per (model, ``at``)."""
        key = (model, at)
        found = self._prices.get(key, _MISS)
        if found is _MISS:
            if len(self._prices) > 4096:
                self._prices.clear()
            found = self._prices[key] = self.source.price(model, at)
        assert found is None or isinstance(found, Price)
        return found

    def _rates(self, model: str, ns: int) -> tuple[Price, Rates] | None:
        sec = ns // 1_000_000_000
        key = (model, sec)
        found = self._compiled.get(key, _MISS)
        if found is _MISS:
            if len(self._compiled) > 4096:
                self._compiled.clear()
            price = self.price(model, self.second(ns))
            found = self._compiled[key] = None if price is None else (price, rates_of(price))
        assert found is None or isinstance(found, tuple)
        return found

    def cost(
        self, attrs: Mapping[str, Any], start_ns: int
    ) -> tuple[str | Rates | None, str | None]:
        """``(cost, cost_status)`` of a span that started at ``start_ns``: the values
        :func:`~daytwo.tracing.pricing.span_cost` gives, with model prices looked up
        once per model and second, and a model call's cost left as the :data:`Rates`
        to apply to its token counts (:func:`_cost_text`, where the row is made).
        """
        if attrs.get(A.OPERATION) not in A.COST_OPERATIONS:
            cost = span_cost(attrs, self.second(start_ns), self)
            if cost is None:
                return None, None
            return (None if cost.usd is None else str(cost.usd)), cost.status
        found = None
        for key in (A.MODEL_PROFILE, A.RESPONSE_MODEL, A.REQUEST_MODEL):
            model = attrs.get(key)
            if isinstance(model, str) and model:
                found = self._rates(model, start_ns)
                if found is not None:
                    break
        if found is None or found[0].currency != "USD":
            return None, "unknown"
        return found[1], "priced"


Rates = tuple[str, str, str | None, str | None]
"""A USD price's input, output, cached and reasoning rates (per million tokens) as
decimal text: what a :data:`SpanRecord` carries for a model call's cost, which is
computed where its row is made (:func:`_cost_text`), in the writer process when
there is one."""


def rates_of(price: Price) -> Rates:
    """The :data:`Rates` of ``price`` (exact: ``Decimal`` text reads back the same)."""
    return (
        str(price.input),
        str(price.output),
        None if price.cached is None else str(price.cached),
        None if price.reasoning is None else str(price.reasoning),
    )


@functools.lru_cache(maxsize=256)
def _compiled(rates: Rates) -> tuple[Price, CompiledPrice | None]:
    cached, reasoning = rates[2], rates[3]
    price = Price(
        input=Decimal(rates[0]),
        output=Decimal(rates[1]),
        cached=None if cached is None else Decimal(cached),
        reasoning=None if reasoning is None else Decimal(reasoning),
    )
    return price, CompiledPrice.of(price)


def _cost_text(rates: Rates, attrs: Mapping[str, Any]) -> str:
    """``str(token_cost(price, attrs))`` for the price of ``rates``: on integers
    (:class:`~daytwo.tracing.pricing.CompiledPrice`) when the rates allow it."""
    price, compiled = _compiled(rates)
    return compiled.cost_text(attrs) if compiled is not None else str(token_cost(price, attrs))


COLUMNS = (
    "span_id",
    "trace_id",
    "parent_span_id",
    "name",
    "kind",
    "scope",
    "start_time",
    "end_time",
    "duration_ms",
    "status",
    "status_message",
    "attributes",
    "operation",
    "model",
    "run_id",
    "session_id",
    "agent",
    "principal",
    "tenant",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_status",
)
"""``trace_spans`` columns in the order of :func:`_record_values`."""
_SPAN_ID, _PARENT, _COST_USD, _COST_STATUS = 0, 2, 21, 22
_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_ERROR = StatusCode.ERROR


def _hex(ids: dict[int, str], value: int, width: int) -> str:
    """``value`` as ``width`` hex digits, remembered (a batch's spans share few traces)."""
    text = ids.get(value)
    if text is None:
        if len(ids) > 1024:
            ids.clear()
        text = ids[value] = f"{value:0{width}x}"
    return text


def _record_cost(
    attrs: Mapping[str, Any], start_ns: int, prices: PriceSource | None
) -> tuple[str | Rates | None, str | None]:
    if attrs.get(A.OPERATION) not in A.COST_OPERATIONS and A.TOOL_COST_USD not in attrs:
        return None, None
    if isinstance(prices, _PriceCache):
        return prices.cost(attrs, start_ns)
    cost = span_cost(attrs, _ts(start_ns), prices)
    if cost is None:
        return None, None
    return (None if cost.usd is None else str(cost.usd)), cost.status


def cost_columns(
    attrs: Mapping[str, Any], start_ns: int, prices: PriceSource | None
) -> tuple[str | None, str | None]:
    """A span's ``cost_usd`` text and ``cost_status`` (None, None for a span that costs
    nothing): through a :class:`_PriceCache` when ``prices`` is one (integer costs, one
    price lookup per model and second), else priced at once. The span store and OTLP
    ingest both price their spans here."""
    usd, status = _record_cost(attrs, start_ns, prices)
    if isinstance(usd, tuple):
        return _cost_text(usd, attrs), status
    return usd, status


SpanRecord = tuple[
    int,  # span id
    int,  # trace id
    int | None,  # parent span id
    str,  # name
    str,  # kind
    str | None,  # instrumentation scope
    int,  # start, ns since the epoch
    int,  # end, ns since the epoch
    bool,  # status is ERROR
    str | None,  # status message
    Mapping[str, Any],  # attributes
    str | Rates | None,  # cost_usd text, or the rates it is computed from
    str | None,  # cost_status
]
"""What is read off a finished span in the traced process (:func:`span_record`): plain
values, so that a writer process can be sent them (:mod:`daytwo.tracing.writer`), with
the cost already priced (the price source lives in the traced process)."""


def span_record(span: ReadableSpan, prices: PriceSource | None) -> SpanRecord:
    """The :data:`SpanRecord` of a finished span, priced from ``prices``.

    This runs once per stored span under the GIL the traced thread needs too: every
    value is read once, through the SDK's public properties.
    """
    ctx = span.get_span_context()
    assert ctx is not None
    attrs = _attributes(span)
    start_ns = span.start_time or 0
    usd, cost_status = _record_cost(attrs, start_ns, prices)
    parent = span.parent
    scope = span.instrumentation_scope
    status = span.status
    return (
        ctx.span_id,
        ctx.trace_id,
        parent.span_id if parent is not None else None,
        span.name,
        _KINDS[span.kind],
        scope.name if scope is not None else None,
        start_ns,
        span.end_time or start_ns,
        status.status_code is _ERROR,
        status.description,
        attrs,
        usd,
        cost_status,
    )


def _record_values(
    record: SpanRecord,
    stamp: Callable[[int], Any],
    encode: Callable[[Mapping[str, Any]], Any],
    traces: dict[int, str] | None = None,
) -> list[Any]:
    """One ``trace_spans`` row in :data:`COLUMNS` order; ``stamp`` converts nanosecond
    times and ``encode`` the attribute mapping into what the driver takes; ``traces``
    remembers the hex form of trace ids across the spans of a batch.

    Every value is converted with the cheapest call that gives the same result
    (``_str`` only for values that are not short strings): with the in-thread writer
    this runs under the GIL the traced thread needs too.
    """
    (
        span_id,
        trace_id,
        parent,
        name,
        kind,
        scope_name,
        start_ns,
        end_ns,
        error,
        message,
        attrs,
        usd,
        cost_status,
    ) = record
    get = attrs.get
    operation = get(A.OPERATION)
    agent = get(A.AGENT_NAME)
    if agent is not None and get(A.AGENT_VERSION) is not None:
        agent = f"{agent}@{get(A.AGENT_VERSION)}"
    model = get(A.MODEL_PROFILE) or get(A.RESPONSE_MODEL) or get(A.REQUEST_MODEL)
    run, session, principal, tenant = (
        get(A.RUN_ID),
        get(A.SESSION_ID),
        get(A.PRINCIPAL),
        get(A.TENANT),
    )
    tokens_in, tokens_out = get(A.USAGE_INPUT), get(A.USAGE_OUTPUT)
    if type(usd) is tuple:
        usd = _cost_text(usd, attrs)
    return [
        f"{span_id:016x}",
        _hex(traces, trace_id, 32) if traces is not None else f"{trace_id:032x}",
        f"{parent:016x}" if parent is not None else None,
        name if len(name) <= 255 else name[:255],
        kind,
        scope_name if type(scope_name) is str and len(scope_name) <= 128 else _str(scope_name, 128),
        stamp(start_ns),
        stamp(end_ns),
        (end_ns - start_ns) / 1e6,
        "error" if error else "ok",
        message,
        encode(attrs),
        operation if type(operation) is str and len(operation) <= 32 else _str(operation, 32),
        model if type(model) is str and len(model) <= 255 else _str(model, 255),
        run if type(run) is str and len(run) <= 64 else _str(run, 64),
        session if type(session) is str and len(session) <= 128 else _str(session, 128),
        agent if type(agent) is str and len(agent) <= 255 else _str(agent, 255),
        principal if type(principal) is str and len(principal) <= 255 else _str(principal, 255),
        tenant if type(tenant) is str and len(tenant) <= 255 else _str(tenant, 255),
        tokens_in if type(tokens_in) is int else _optional_int(tokens_in),
        tokens_out if type(tokens_out) is int else _optional_int(tokens_out),
        usd,
        cost_status,
    ]


def _plain(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items()}


def _decision_rows(span: ReadableSpan, trace_id: str, span_id: str) -> list[dict[str, Any]]:
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
    return decisions


def span_to_rows(
    span: ReadableSpan, prices: PriceSource | None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The ``trace_spans`` row and ``trace_decisions`` rows of one finished span."""
    row = dict(zip(COLUMNS, _record_values(span_record(span, prices), _ts, _plain), strict=True))
    return row, _decision_rows(span, row["trace_id"], row["span_id"])


def _insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """executemany of dict rows (decision records), converted as the column types would."""
    columns = list(rows[0])
    json_idx = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    time_idx = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
    sqlite = conn.dialect.name == "sqlite"
    if not sqlite:
        from psycopg.types.json import Jsonb
    params: list[tuple[Any, ...]] = []
    for row in rows:
        values = [row[c] for c in columns]
        for i in json_idx:
            if values[i] is not None:
                values[i] = _dumps(values[i]) if sqlite else Jsonb(values[i], dumps=_dumps)
        if sqlite:
            for i in time_idx:
                if values[i] is not None:
                    values[i] = (
                        values[i]
                        .astimezone(UTC)
                        .replace(tzinfo=None)
                        .isoformat(" ", "microseconds")
                    )
        params.append(tuple(values))
    _execute_many(conn, table.name, columns, params)


_NULL = float("nan")
"""What SQLite is given for NULL: it stores a bound NaN as NULL, exactly like None (so a
NaN was never storable), and the ``sqlite3`` module binds a float directly, while each
None goes through its adaptation protocol (a failed ``__conform__`` lookup): about a
microsecond each, for the five to ten empty columns of a typical span."""

_SQLITE_ROWS = 1024
"""Rows per SQLite INSERT statement (fewer when the columns would pass the limit on
bound variables). The ``sqlite3`` module releases the GIL once per statement, and a
writer thread that shares the GIL with a busy traced thread waits up to the
interpreter's switch interval (5 ms) to get it back: one statement for a whole batch
keeps that to one wait."""


def _sqlite_stamp(column: str) -> str:
    """SQL turning nanoseconds since the epoch into SQLAlchemy's SQLite UTC datetime text.

    ``YYYY-MM-DD HH:MM:SS.ffffff`` truncated to the microsecond, like :func:`_ts`
    (integer division on integers): SQLite builds it outside the GIL.
    """
    return (
        f"printf('%s.%06d', datetime({column} / 1000000000, 'unixepoch'), "
        f"{column} / 1000 % 1000000)"
    )


@functools.lru_cache(maxsize=64)
def _values_sql(
    table: str,
    columns: tuple[str, ...],
    rows: int,
    ns_columns: tuple[int, ...] = (),
    padded: bool = False,
) -> str:
    """``INSERT INTO table (columns) SELECT ... FROM (VALUES (?, ...), ...)`` for ``rows``
    rows; when ``padded``, rows whose first column is NULL (padding) are skipped. The
    columns at ``ns_columns`` take nanoseconds since the epoch, converted by SQLite."""
    one = f"({', '.join('?' for _ in columns)})"
    exprs = [
        _sqlite_stamp(f"column{i + 1}") if i in ns_columns else f"column{i + 1}"
        for i in range(len(columns))
    ]
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(exprs)} "
        f"FROM (VALUES {', '.join([one] * rows)})"
        + (" WHERE column1 IS NOT NULL" if padded else "")
    )


def _sqlite_rows_per_statement(driver: Any, width: int) -> int:
    getlimit = getattr(driver, "getlimit", None)
    limit = getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if getlimit is not None else 999
    rows = _SQLITE_ROWS
    while rows > 1 and rows * width > limit:
        rows //= 2
    return rows


def _sqlite_statements(
    driver: Any,
    table: str,
    columns: Sequence[str],
    params: Sequence[Sequence[Any]],
    ns_columns: tuple[int, ...] = (),
) -> list[tuple[str, tuple[Any, ...]]]:
    """The multi-row INSERT statements (and their parameters) that store ``params``.

    Chunks of up to :data:`_SQLITE_ROWS` rows, with :data:`_NULL` for None. A shorter
    chunk is padded with NULL rows (which the statement skips by their NULL first
    column, so no padding when a row's first value is None) to the next power of two:
    a handful of statements, each prepared once per connection, and one statement
    per batch. Each statement releases the GIL once, while SQLite updates the table
    and its indexes beside the traced program on another core; ``executemany`` would
    release and wait for it once per row (see :data:`_SQLITE_ROWS`).
    """
    width = len(columns)
    names = tuple(columns)
    null = _NULL
    flat = [null if v is None else v for v in chain.from_iterable(params)]
    per = _sqlite_rows_per_statement(driver, width)
    statements: list[tuple[str, tuple[Any, ...]]] = []
    # Padding rows are told apart by their NULL first column (a primary key or a
    # required column for every caller); should a real row have none, no padding.
    pad = all(row[0] is not None for row in params)
    done, total = 0, len(params)
    while done < total:
        rows = min(per, total - done)
        size = 1
        while size < rows and pad:
            size *= 2
        size = max(size, rows)
        chunk = flat[done * width : (done + rows) * width]
        if size > rows:
            chunk.extend([null] * ((size - rows) * width))
        statements.append((_values_sql(table, names, size, ns_columns, pad), tuple(chunk)))
        done += rows
    return statements


def _execute_many(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    params: Sequence[Sequence[Any]],
    ns_columns: tuple[int, ...] = (),
) -> None:
    """Insert ``params`` (rows of driver values in ``columns`` order) into ``table``.

    The columns at ``ns_columns`` hold nanoseconds since the epoch, stored as UTC
    datetimes. Straight to the driver: per-row SQLAlchemy bind processing costs more
    than the insert itself (tests read the rows back through the ORM on both
    backends). PostgreSQL gets psycopg's ``executemany`` (pipelined), SQLite
    multi-row statements (:func:`_sqlite_statements`).
    """
    if not params:
        return
    if conn.dialect.name != "sqlite":
        rows: list[tuple[Any, ...]] = []
        for row in params:
            if ns_columns:
                converted = list(row)
                for i in ns_columns:
                    converted[i] = _ts(converted[i])
                row = converted
            rows.append(tuple(row))
        marks = ", ".join("%s" for _ in columns)
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        return
    driver = conn.connection.driver_connection
    for sql, chunk in _sqlite_statements(driver, table, columns, params, ns_columns):
        conn.exec_driver_sql(sql, chunk)


_TIMES = (COLUMNS.index("start_time"), COLUMNS.index("end_time"))


class SpanSink(Protocol):
    """Where :class:`StoreSpanProcessor` hands its batches: :class:`RowWriter` writes
    them in the traced process, :class:`~daytwo.tracing.writer.WriterProcess` sends
    them to a writer process."""

    def write(self, records: list[SpanRecord], decisions: list[dict[str, Any]]) -> None:
        """Store (or hand on) one batch; raises when it cannot."""

    def flush(self, timeout_s: float) -> bool:
        """Wait until every batch handed over so far is committed; False when not."""

    def dropped(self) -> int:
        """Spans this sink has lost (a batch that could not be written)."""

    def after_fork(self) -> None:
        """Called in a forked child: forget what belongs to the parent."""

    def close(self) -> None:
        """Release what the sink holds (after a final flush)."""


class RowWriter:
    """Turns span records into ``trace_spans`` rows and writes them, in batches.

    The cost-wrapper state and the trace-id text cache live here: in the traced process
    with the in-thread writer, in the writer process otherwise.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cost_below: set[str] = set()
        self._trace_hex: dict[int, str] = {}

    def dropped(self) -> int:
        """Always 0: a batch that fails raises to the caller, which counts it."""
        return 0

    def flush(self, timeout_s: float) -> bool:
        """Nothing to wait for: :meth:`write` commits before it returns."""
        return True

    def after_fork(self) -> None:
        """A forked child starts with empty state and its own connections."""
        self._cost_below = set()
        self._trace_hex = {}
        self.store.engine.dispose(close=False)  # never share the parent's connections

    def close(self) -> None:
        """Nothing held beyond the store (which its owner disposes)."""

    def _mark_wrapper(self, row: list[Any]) -> None:
        """A cost span with a cost span inside it is a wrapper: its cost is not counted.

        daytwo's own layers never nest cost spans (each call has one span, opened by
        the layer that makes it); this guards against third-party instrumentation in
        the same process (a framework's LLM span around daytwo's ``chat`` span, or an
        instrumented SDK's span inside it). Spans arrive in end order, so children come
        before their parents: remember which parents have a cost span below them.
        """
        span_id, parent = row[_SPAN_ID], row[_PARENT]
        below = span_id in self._cost_below
        if below:
            self._cost_below.discard(span_id)
        if row[_COST_STATUS] is not None:
            if below:
                row[_COST_STATUS], row[_COST_USD] = WRAPPER, None
            below = True
        if below and parent is not None:
            if len(self._cost_below) > 100_000:  # parents in other processes never end here
                self._cost_below.clear()
            self._cost_below.add(parent)

    def write(self, records: list[SpanRecord], decisions: list[dict[str, Any]]) -> None:
        """Convert ``records`` to rows and insert them with ``decisions``, in one commit."""
        self.insert(self.rows(records), decisions)

    def rows(self, records: list[SpanRecord]) -> list[list[Any]]:
        """The ``trace_spans`` rows of ``records`` (in end order: wrappers are marked)."""
        encode: Callable[[Mapping[str, Any]], Any]
        if self.store.is_sqlite:
            encode = _dumps
        else:
            from psycopg.types.json import Jsonb

            def encode(attrs: Mapping[str, Any]) -> Any:
                return Jsonb(attrs, dumps=_dumps)

        rows: list[list[Any]] = []
        mark, traces = self._mark_wrapper, self._trace_hex
        for record in records:
            # Times stay nanoseconds: _execute_many (SQLite: SQL) converts them.
            row = _record_values(record, int, encode, traces)
            mark(row)
            rows.append(row)
        return rows

    def insert(self, rows: list[list[Any]], decisions: list[dict[str, Any]]) -> None:
        """Insert ``rows`` (from :meth:`rows`) and ``decisions`` in one commit."""
        if not rows and not decisions:
            return
        engine = self.store.engine
        # Straight to the driver (not the ORM's bulk path): spans are write-once rows.
        if self.store.is_sqlite and not decisions:
            with engine.connect() as conn:
                driver: Any = conn.connection.driver_connection
                statements = _sqlite_statements(driver, _SPANS.name, COLUMNS, rows, _TIMES)
                if len(statements) == 1:
                    # One statement is a transaction of its own (the connection is in
                    # autocommit mode: SQLAlchemy's BEGIN is not sent): as durable as
                    # an explicit one (WAL, synchronous=NORMAL), and the GIL is released
                    # and waited for once, not three times (BEGIN, INSERT, COMMIT).
                    driver.execute(*statements[0])
                    return
                with conn.begin():
                    for sql, values in statements:
                        conn.exec_driver_sql(sql, values)
                return
        with engine.begin() as conn:
            _execute_many(conn, _SPANS.name, COLUMNS, rows, _TIMES)
            if decisions:
                _insert_many(conn, _DECISIONS, decisions)


class StoreSpanProcessor(SpanProcessor):
    """Stores finished spans (and decision records) in the system of record, in batches.

    ``sink`` is where batches go: by default a :class:`RowWriter` in a thread of this
    process; :func:`~daytwo.tracing.setup.setup_tracing` can pass a
    :class:`~daytwo.tracing.writer.WriterProcess` instead.
    """

    def __init__(
        self,
        store: Store,
        *,
        prices: PriceSource | None = None,
        max_batch: int = 512,
        interval_s: float = 0.5,
        max_queue: int = 100_000,
        sink: SpanSink | None = None,
    ) -> None:
        self.store = store
        self.prices = prices
        self.max_batch = max_batch
        self.interval_s = interval_s
        self.max_queue = max_queue
        self.sink: SpanSink = sink if sink is not None else RowWriter(store)
        self._queue: deque[ReadableSpan] = deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._stopped = False
        self._dropped = 0
        self._worker = threading.Thread(target=self._run, name="daytwo-span-store", daemon=True)
        self._worker.start()
        # A forked child (pre-fork servers) has no worker thread: start its own.
        os.register_at_fork(after_in_child=self._after_fork)

    @property
    def prices(self) -> PriceSource | None:
        """The price source model-call spans are priced from as they are stored."""
        return self._prices

    @prices.setter
    def prices(self, prices: PriceSource | None) -> None:
        self._prices = prices
        self._price_cache = None if prices is None else _PriceCache(prices)

    @property
    def dropped(self) -> int:
        """Spans lost: refused by a full queue, or in a batch that could not be stored."""
        return self._dropped + self.sink.dropped()

    def _after_fork(self) -> None:
        if self._stopped:
            return
        self._queue = deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self.sink.after_fork()
        self._worker = threading.Thread(target=self._run, name="daytwo-span-store", daemon=True)
        self._worker.start()

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the span; the worker stores it."""
        if self._stopped:
            return
        if len(self._queue) >= self.max_queue:
            # The DB cannot keep up (or is down): drop rather than grow without bound.
            self._dropped += 1
            return
        self._queue.append(span)
        # ``is_set`` reads a flag; ``set`` takes the event's lock and notifies: while the
        # worker waits for the GIL, every further span would pay for that again.
        if len(self._queue) >= self.max_batch and not self._wake.is_set():
            self._wake.set()

    def _drain(self) -> list[ReadableSpan]:
        batch: list[ReadableSpan] = []
        while self._queue:
            try:
                batch.append(self._queue.popleft())
            except IndexError:  # pragma: no cover - raced with another drain
                break
        return batch

    def _write(self, spans: Sequence[ReadableSpan]) -> None:
        if not spans:
            return
        records: list[SpanRecord] = []
        decisions: list[dict[str, Any]] = []
        prices = self._price_cache
        for span in spans:
            record = span_record(span, prices)
            records.append(record)
            # ``span.events`` copies the SDK's list into a tuple: look before copying.
            if getattr(span, "_events", True) and span.events:
                decisions.extend(_decision_rows(span, f"{record[1]:032x}", f"{record[0]:016x}"))
        self.sink.write(records, decisions)

    def _flush_once(self) -> bool:
        with self._write_lock:
            batch = self._drain()
            try:
                self._write(batch)
            except Exception:
                # Tracing must never break the traced program: log and drop the batch.
                self._dropped += len(batch)
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
        with self._write_lock:
            return self.sink.flush(timeout_millis / 1000) and ok

    def shutdown(self) -> None:
        """Store what is queued and stop the worker."""
        self.force_flush()
        self._stopped = True
        self._wake.set()
        self._worker.join(timeout=5)
        self.sink.close()
