"""The peer of bench/otlp_ingest.py: a hand-written, collector-less OTLP/HTTP receiver.

Parses ``ExportTraceServiceRequest`` with ``opentelemetry-proto`` and inserts one row
per span with the raw driver in one transaction per request. No auth, no attribute
mapping, no pricing, no run records: the floor of storing OTLP spans from Python.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import threading
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_DDL = """CREATE TABLE IF NOT EXISTS spans (
    span_id TEXT PRIMARY KEY, trace_id TEXT NOT NULL, parent_span_id TEXT, name TEXT NOT NULL,
    kind INTEGER, start_ns BIGINT, end_ns BIGINT, status INTEGER, attributes TEXT)"""
_INSERT = "INSERT INTO spans VALUES ({})".format(", ".join(["{p}"] * 9))


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which) if which else None


def _rows(body: bytes) -> list[tuple[Any, ...]]:
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    rows = []
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for sp in ss.spans:
                attrs = {kv.key: _value(kv.value) for kv in sp.attributes}
                rows.append(
                    (
                        sp.span_id.hex(), sp.trace_id.hex(), sp.parent_span_id.hex() or None,
                        sp.name, sp.kind, sp.start_time_unix_nano, sp.end_time_unix_nano,
                        sp.status.code, json.dumps(attrs),
                    )
                )  # fmt: skip
    return rows


class _Sink:
    def __init__(self, url: str) -> None:
        self.url = url
        self.local = threading.local()
        if url.startswith("sqlite"):
            self.path = url.split("///", 1)[1]
            conn = sqlite3.connect(self.path)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_DDL)
            conn.commit()
            conn.close()
        else:
            import psycopg

            with psycopg.connect(_pg_dsn(url), autocommit=True) as conn:
                conn.execute(_DDL)

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if self.url.startswith("sqlite"):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = sqlite3.connect(self.path, timeout=60)
                conn.execute("PRAGMA synchronous=NORMAL")
            with conn:
                conn.executemany(_INSERT.format(p="?"), rows)
        else:
            import psycopg

            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = psycopg.connect(_pg_dsn(self.url))
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(_INSERT.format(p="%s"), rows)


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def count_rows(url: str) -> int:
    """Rows stored so far (for the benchmark's count-back)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(_pg_dsn(url)) as conn:
        row = conn.execute("SELECT count(*) FROM spans").fetchone()
        return int(row[0]) if row else 0


def app() -> Starlette:
    """uvicorn factory."""
    sink = _Sink(os.environ["BARE_DB_URL"])
    ok = ExportTraceServiceResponse().SerializeToString()

    async def traces(request: Request) -> Response:
        body = await request.body()
        await run_in_threadpool(lambda: sink.write(_rows(body)))
        return Response(ok, media_type="application/x-protobuf")

    return Starlette(routes=[Route("/v1/traces", traces, methods=["POST"])])
