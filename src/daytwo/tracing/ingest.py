"""Store spans sent by external agents (OTLP) in the span store, priced by the ledger.

:func:`parse_request` turns an ``ExportTraceServiceRequest`` into ``trace_spans`` rows
(validating ids and the types of the fields the ledger counts, mapping OpenInference
onto the GenAI conventions); :func:`store_batch` writes them inside the caller's
transaction. Every span is attributed to the sender's tenant and principal, whatever
its own attributes claim, and carries the external run id of its trace
(:func:`external_run_id`), so each external trace can be listed and explained as a run.

Cost is counted once per model call: a cost span with another cost span below it
(a framework's LLM span around the model gateway's ``chat`` span) becomes a
``wrapper``, here at ingest across batches, and in the ledger's roll-ups at read time.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Table, select, update

from daytwo.exceptions import ConflictError, InputError
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import attributes as A
from daytwo.tracing.conventions import normalize
from daytwo.tracing.otlp import ExportTraceServiceRequest
from daytwo.tracing.pricing import PriceSource
from daytwo.tracing.processor import (
    _EPOCH,
    _TIMES,
    COLUMNS,
    WRAPPER,
    _dumps,
    _execute_many,
    _insert_many,
    _PriceCache,
    _ts,
    cost_columns,
)

__all__ = [
    "EXTERNAL_RUN_PREFIX",
    "IngestResult",
    "ParsedBatch",
    "TraceSummary",
    "external_run_id",
    "parse_request",
    "store_batch",
]

EXTERNAL_RUN_PREFIX = "otlp-"
_RUN_PREFIX = EXTERNAL_RUN_PREFIX
_SPANS: Table = SpanRow.__table__  # type: ignore[assignment]
_DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
_KINDS = ("internal", "internal", "server", "client", "producer", "consumer")
# Attributes that bind a span to a run, tenant or principal: set by the server only.
_RESERVED = (A.RUN_ID, A.TENANT, A.PRINCIPAL)
_COUNTED = ("priced", "unknown")
_I = {name: i for i, name in enumerate(COLUMNS)}
_ATTRS, _MODEL, _COST_STATUS = _I["attributes"], _I["model"], _I["cost_status"]


def _ns(at: datetime) -> int:
    """A stored UTC datetime as nanoseconds since the epoch (microsecond precision)."""
    delta = at.replace(tzinfo=UTC) - _EPOCH if at.tzinfo is None else at - _EPOCH
    return (delta // timedelta(microseconds=1)) * 1000


def external_run_id(trace_id: str) -> str:
    """The run id under which an external trace is listed (``otlp-<trace id>``)."""
    return f"{EXTERNAL_RUN_PREFIX}{trace_id}"


_SCALARS = frozenset({"string_value", "int_value", "double_value", "bool_value"})


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which in _SCALARS:
        return getattr(v, which)
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return None


def _attrs(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


@dataclass
class ParsedBatch:
    """The rows of one export request, ready for :func:`store_batch`."""

    tenant: str
    principal: str
    rows: list[list[Any]] = field(default_factory=list)
    """``trace_spans`` values in :data:`~daytwo.tracing.processor.COLUMNS` order, with
    nanosecond times and attribute dicts (encoded for the driver when stored)."""
    decisions: list[dict[str, Any]] = field(default_factory=list)
    io: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    """Input and output values of each span that has them (by span id)."""
    unpriced_models: set[str] = field(default_factory=set)


def _check_id(raw: bytes, size: int, what: str, where: str, *, optional: bool = False) -> str:
    if not raw and optional:
        return ""
    if len(raw) != size or not any(raw):
        raise InputError(
            f"{where} has {'no' if not raw else 'an invalid'} {what}"
            + (f" ({len(raw)} bytes)" if raw else ""),
            hint=f"every span needs a non-zero {size}-byte {what}",
        )
    return raw.hex()


def parse_request(
    request: ExportTraceServiceRequest,
    *,
    tenant: str,
    principal: str,
    prices: PriceSource | None,
) -> ParsedBatch:
    """Validate and convert every span of ``request``; InputError on the first bad one."""
    batch = ParsedBatch(tenant, principal)
    cache = _PriceCache(prices) if prices is not None else None
    rows, io, decisions = batch.rows, batch.io, batch.decisions
    n = 0
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        service = resource.get("service.name")
        if not isinstance(service, str) or service.startswith("unknown_service"):
            service = None
        for ss in rs.scope_spans:
            scope = ss.scope.name[:128] or None
            for span in ss.spans:
                try:
                    row = _convert(span, scope, service, batch, cache)
                except InputError as exc:
                    # Messages start with "span"; name which one (only now: it costs).
                    where = f"span {n} ({span.name[:60]!r})"
                    raise InputError(exc.message.replace("span", where, 1), hint=exc.hint) from None
                n += 1
                rows.append(row)
                attrs = row[_ATTRS]
                if row[_COST_STATUS] == "unknown":
                    batch.unpriced_models.add(str(row[_MODEL] or "(no model name)"))
                if "input.value" in attrs or "output.value" in attrs:
                    io[row[0]] = (attrs.get("input.value"), attrs.get("output.value"))
                if span.events:
                    for event in span.events:
                        if event.name == A.DECISION_EVENT:
                            decisions.append(_decision(event, row[1], row[0]))
    return batch


_ZERO16, _ZERO8 = bytes(16), bytes(8)


def _convert(
    span: Any,
    scope: str | None,
    service: str | None,
    batch: ParsedBatch,
    cache: _PriceCache | None,
) -> list[Any]:
    raw_trace, raw_span, raw_parent = span.trace_id, span.span_id, span.parent_span_id
    if len(raw_trace) != 16 or raw_trace == _ZERO16:
        _check_id(raw_trace, 16, "trace id", "span")
    if len(raw_span) != 8 or raw_span == _ZERO8:
        _check_id(raw_span, 8, "span id", "span")
    if raw_parent and (len(raw_parent) != 8 or raw_parent == _ZERO8):
        _check_id(raw_parent, 8, "parent span id", "span")
    if not span.start_time_unix_nano:
        raise InputError("span has no start time", hint="set startTimeUnixNano")
    attrs = normalize(_attrs(span.attributes), "span")
    for key in _RESERVED:
        if key in attrs:
            del attrs[key]
    if service is not None and "service.name" not in attrs:
        attrs["service.name"] = service
    return _row(
        span, raw_trace.hex(), raw_span.hex(), raw_parent.hex() or None, scope, attrs, batch, cache
    )


def _row(
    span: Any,
    trace_id: str,
    span_id: str,
    parent: str | None,
    scope: str | None,
    attrs: dict[str, Any],
    batch: ParsedBatch,
    cache: _PriceCache | None,
) -> list[Any]:
    start = span.start_time_unix_nano
    end = max(span.end_time_unix_nano, start)
    get = attrs.get
    operation = get(A.OPERATION)
    usd, cost_status = cost_columns(attrs, start, cache)
    model = get(A.RESPONSE_MODEL) or get(A.REQUEST_MODEL)
    tokens_in, tokens_out = get(A.USAGE_INPUT), get(A.USAGE_OUTPUT)
    session, agent = get(A.SESSION_ID), get("service.name")
    status = span.status
    values = [
        span_id,
        trace_id,
        parent,
        span.name[:255],
        _KINDS[span.kind] if 0 <= span.kind < len(_KINDS) else "internal",
        scope,
        start,
        end,
        (end - start) / 1e6,
        "error" if status.code == 2 else "ok",
        status.message or None,
        attrs,
        str(operation)[:32] if operation is not None else None,
        str(model)[:255] if model else None,
        _RUN_PREFIX + trace_id,
        str(session)[:128] if session is not None else None,
        str(agent)[:255] if agent else None,
        batch.principal,
        batch.tenant,
        int(tokens_in) if tokens_in is not None else None,
        int(tokens_out) if tokens_out is not None else None,
        usd,
        cost_status,
    ]
    return values


def _decision(event: Any, trace_id: str, span_id: str) -> dict[str, Any]:
    import json

    ev = _attrs(event.attributes)
    try:
        data = json.loads(str(ev.get(A.DECISION_DATA) or "{}"))
    except json.JSONDecodeError:
        data = {"raw": str(ev.get(A.DECISION_DATA))}
    return {
        "trace_id": trace_id,
        "span_id": span_id,
        "at": _ts(event.time_unix_nano),
        "kind": str(ev.get(A.DECISION_KIND) or "unknown")[:64],
        "summary": str(ev.get(A.DECISION_SUMMARY) or ""),
        "data": data if isinstance(data, dict) else {"value": data},
    }


@dataclass
class TraceSummary:
    """What one external trace adds up to after a request (for its run record)."""

    trace_id: str
    run_id: str
    new: bool
    spans: int = 0
    agent: str | None = None
    root_name: str | None = None
    status: str = "running"
    error: str | None = None
    started_at: Any = None
    finished_at: Any = None
    input: Any = None
    output: Any = None
    session_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_spans: int = 0


@dataclass
class IngestResult:
    """What :func:`store_batch` stored."""

    accepted: int
    duplicates: int
    traces: list[TraceSummary]
    unpriced_models: set[str]


@dataclass
class _Node:
    span_id: str
    trace_id: str
    parent: str | None
    cost_status: str | None
    cost_usd: str | None
    input_tokens: int | None
    output_tokens: int | None
    name: str
    status: str
    status_message: str | None
    start: int
    end: int
    agent: str | None
    session: str | None
    stored: bool
    scope: str | None = None


def _existing(conn: Connection, trace_ids: Sequence[str]) -> list[Any]:
    cols = (
        SpanRow.span_id,
        SpanRow.trace_id,
        SpanRow.parent_span_id,
        SpanRow.cost_status,
        SpanRow.cost_usd,
        SpanRow.input_tokens,
        SpanRow.output_tokens,
        SpanRow.name,
        SpanRow.status,
        SpanRow.status_message,
        SpanRow.start_time,
        SpanRow.end_time,
        SpanRow.agent,
        SpanRow.session_id,
        SpanRow.tenant,
        SpanRow.principal,
        SpanRow.scope,
    )
    found: list[Any] = []
    for i in range(0, len(trace_ids), 500):
        chunk = trace_ids[i : i + 500]
        found.extend(conn.execute(select(*cols).where(SpanRow.trace_id.in_(chunk))).all())
    return found


def store_batch(
    conn: Connection,
    batch: ParsedBatch,
    *,
    tenant_of: Callable[[str | None], str],
) -> IngestResult:
    """Write ``batch`` in ``conn``'s transaction; ConflictError when a trace is another's.

    ``tenant_of`` maps a recorded principal string to its tenant (the server's
    convention). A span already stored under the same trace is skipped, so an exporter
    retrying a request stores nothing twice.
    """
    trace_ids = sorted({r[1] for r in batch.rows})
    existing = _existing(conn, trace_ids)
    for row in existing:
        owner = row.tenant or (tenant_of(row.principal) if row.principal else None)
        if owner is not None and owner != batch.tenant:
            raise ConflictError(
                f"trace {row.trace_id} is in use by another tenant; none of the spans were stored",
                hint="send this tenant's spans in traces of their own (new trace ids)",
            )
    nodes: dict[str, _Node] = {}
    for r in existing:
        nodes[r.span_id] = _Node(
            r.span_id, r.trace_id, r.parent_span_id, r.cost_status, r.cost_usd,
            r.input_tokens, r.output_tokens, r.name, r.status, r.status_message,
            _ns(r.start_time), _ns(r.end_time), r.agent, r.session_id, True, r.scope,
        )  # fmt: skip
    rows: list[list[Any]] = []
    adopted: list[list[Any]] = []
    duplicates = 0
    unattributed = {
        r.span_id: (r.name, _ns(r.start_time))
        for r in existing
        if r.tenant is None and r.principal is None
    }
    for row in batch.rows:
        if row[0] in nodes:
            if unattributed.get(row[0]) == (row[3], row[6] // 1000 * 1000):
                # The same span, already stored by this server's own span processor (an
                # agent running in the server's process): the export attributes it.
                adopted.append(row)
                node = nodes[row[0]]
                node.cost_status, node.cost_usd = row[_I["cost_status"]], row[_I["cost_usd"]]
                node.input_tokens = row[_I["input_tokens"]]
                node.output_tokens = row[_I["output_tokens"]]
                node.agent, node.session = row[_I["agent"]], row[_I["session_id"]]
            else:
                duplicates += 1
            continue
        nodes[row[0]] = _Node(
            row[0], row[1], row[2], row[_I["cost_status"]], row[_I["cost_usd"]],
            row[_I["input_tokens"]], row[_I["output_tokens"]], row[3], row[_I["status"]],
            row[_I["status_message"]], row[6], row[7], row[_I["agent"]],
            row[_I["session_id"]], False, row[5],
        )  # fmt: skip
        rows.append(row)
    demoted = _mark_wrappers(nodes)
    by_id = {row[0]: row for row in (*rows, *adopted)}
    for span_id in demoted:
        if span_id in by_id:
            by_id[span_id][_I["cost_status"]] = WRAPPER
            by_id[span_id][_I["cost_usd"]] = None
    _insert(conn, rows)
    for row in adopted:
        values = dict(zip(COLUMNS, row, strict=True))
        values["start_time"], values["end_time"] = _ts(row[6]), _ts(row[7])
        del values["span_id"]
        conn.execute(update(_SPANS).where(_SPANS.c.span_id == row[0]).values(**values))
    adopted_ids = {row[0] for row in adopted}
    stored_demoted = [s for s in demoted if nodes[s].stored and s not in adopted_ids]
    for span_id in stored_demoted:
        conn.execute(
            update(SpanRow)
            .where(SpanRow.span_id == span_id)
            .values(cost_status=WRAPPER, cost_usd=None)
            .execution_options(synchronize_session=False)
        )
    new_ids = {row[0] for row in rows}
    decisions = [d for d in batch.decisions if d["span_id"] in new_ids]
    if decisions:
        _insert_many(conn, _DECISIONS, decisions)
    existing_traces = {r.trace_id for r in existing}
    traces = _summaries(nodes, trace_ids, existing_traces, batch)
    return IngestResult(len(rows) + len(adopted), duplicates, traces, batch.unpriced_models)


def _local(node: _Node) -> bool:
    """A span this server recorded itself (the model gateway's, a daytwo layer's)."""
    return (node.scope or "").startswith("daytwo.") and node.scope != "daytwo.sdk"


def _mark_wrappers(nodes: Mapping[str, _Node]) -> set[str]:
    """Cost spans (priced or unknown) that another cost span counts already: wrappers.

    1. A cost span with a cost span below it (a framework's LLM span around the
       gateway's ``chat`` span, when the framework made its span current).
    2. A framework's cost span whose call the gateway served, when the framework did
       not make its span current (OpenInference's LangChain instrumentation): the
       gateway's span then hangs off the framework span's parent or an ancestor, and
       runs within the framework span's time. Each gateway span accounts for one
       framework span, the shortest that contains it.
    """
    demoted: set[str] = set()
    for node in nodes.values():
        if node.cost_status not in (*_COUNTED, WRAPPER):
            continue
        seen: set[str] = set()
        current = node.parent
        while current is not None and current in nodes and current not in seen:
            seen.add(current)
            above = nodes[current]
            if above.cost_status in _COUNTED:
                demoted.add(current)
                above.cost_status, above.cost_usd = WRAPPER, None
            current = above.parent
    gateway = [n for n in nodes.values() if _local(n) and n.cost_status in (*_COUNTED, WRAPPER)]
    if not gateway:
        return demoted
    framework = [n for n in nodes.values() if not _local(n) and n.cost_status in _COUNTED]
    for g in sorted(gateway, key=lambda n: n.start):
        candidates = []
        for f in framework:
            if f.cost_status not in _COUNTED or not (f.start <= g.start and g.end <= f.end):
                continue
            # g's parent must be f's parent or one of f's ancestors.
            cur, ok, hops = f.parent, False, 0
            while cur is not None and hops < 100:
                if cur == g.parent:
                    ok = True
                    break
                cur = nodes[cur].parent if cur in nodes else None
                hops += 1
            if ok:
                candidates.append(f)
        if candidates:
            f = min(candidates, key=lambda n: n.end - n.start)
            demoted.add(f.span_id)
            f.cost_status, f.cost_usd = WRAPPER, None
    return demoted


def _insert(conn: Connection, rows: list[list[Any]]) -> None:
    if not rows:
        return
    encode: Callable[[Mapping[str, Any]], Any]
    if conn.dialect.name == "sqlite":
        encode = _dumps
    else:
        from psycopg.types.json import Jsonb

        def encode(attrs: Mapping[str, Any]) -> Any:
            return Jsonb(attrs, dumps=_dumps)

    params = []
    for row in rows:
        values = list(row)
        values[_ATTRS] = encode(values[_ATTRS])
        params.append(values)
    # Times stay nanoseconds: _execute_many converts them.
    _execute_many(conn, _SPANS.name, COLUMNS, params, _TIMES)


def _summaries(
    nodes: Mapping[str, _Node],
    trace_ids: Sequence[str],
    existing_traces: set[str],
    batch: ParsedBatch,
) -> list[TraceSummary]:
    out = {t: TraceSummary(t, external_run_id(t), new=t not in existing_traces) for t in trace_ids}
    starts: dict[str, int] = {}
    for node in nodes.values():
        s = out[node.trace_id]
        start = starts.get(node.trace_id)
        s.spans += 1
        if start is None or node.start < start:
            start = starts[node.trace_id] = node.start
        s.agent = s.agent or node.agent
        s.session_id = s.session_id or node.session
        if node.cost_status in _COUNTED:
            s.input_tokens += node.input_tokens or 0
            s.output_tokens += node.output_tokens or 0
            if node.cost_status == "priced" and node.cost_usd is not None:
                s.cost_usd += Decimal(node.cost_usd)
            else:
                s.unpriced_spans += 1
        if node.parent is None:
            s.root_name = node.name
            s.agent = node.agent or s.agent
            s.finished_at = _ts(node.end)
            s.status = "failed" if node.status == "error" else "succeeded"
            s.error = node.status_message if node.status == "error" else None
            if node.span_id in batch.io:
                s.input, s.output = batch.io[node.span_id]
        elif node.parent not in nodes and s.root_name is None:
            s.root_name = node.name  # the root has not arrived yet: the run is running
    for trace_id, ns in starts.items():
        out[trace_id].started_at = _ts(ns)
    return list(out.values())
