"""OTLP trace ingest benchmark: spans/s accepted and durably stored, 4 concurrent exporters.

    python bench/otlp_ingest.py --json bench/results/otlp_ingest.json

A real uvicorn server (one worker process) serves ``POST /v1/traces``; 4 exporter
threads post pre-encoded OTLP/HTTP protobuf requests of 512 spans (GenAI and
OpenInference attributes: agent roots with input/output, LLM spans with token counts,
GenAI ``chat`` spans, tools, retrievers with documents). A request is answered after
its transaction committed, so the time from the first request to the last answer
covers spans *durably stored*; afterwards the rows are counted back (0 lost).

Contenders, interleaved round by round in the same run, each on a fresh database,
SQLite (file, WAL) and PostgreSQL (127.0.0.1):

- ``daytwo``: ``daytwo.server`` with API-key auth, OpenInference → GenAI mapping,
  pricing by the ledger, wrapper marking, tenant check, one run record per trace;
- ``bare_receiver`` (the peer): the collector-less path written by hand — a Starlette
  route that parses the same request with ``opentelemetry-proto`` and inserts one row
  per span (ids, name, times, status, attributes as JSON) with the raw driver
  (``sqlite3`` / ``psycopg`` executemany), no auth, no pricing, no runs. It is the
  floor of what storing OTLP spans costs in Python on this machine.

(Phoenix or Langfuse as a peer would need their servers and stacks, ClickHouse for
Langfuse; neither is installable offline here, so the peer is the bare path.)
Target: daytwo ≥ 10,000 spans/s on SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import add_lock_options, measuring, write_result

BATCH = 512
BATCHES = 48  # per round and contender: 24,576 spans
EXPORTERS = 4
ROUNDS = 5
PG_URL = os.environ.get("DAYTWO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


# -- the spans ----------------------------------------------------------------------------


def _kv(key: str, value: Any) -> Any:
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    if isinstance(value, bool):
        v = AnyValue(bool_value=value)
    elif isinstance(value, int):
        v = AnyValue(int_value=value)
    elif isinstance(value, float):
        v = AnyValue(double_value=value)
    else:
        v = AnyValue(string_value=str(value))
    return KeyValue(key=key, value=v)


def _trace_spans(rng: random.Random, t0: int) -> list[tuple[str, int, dict[str, Any], int]]:
    """(name, parent index or -1, attributes, kind) of one agent trace of 16 spans."""
    spans: list[tuple[str, int, dict[str, Any], int]] = [
        (
            "support-agent",
            -1,
            {
                "openinference.span.kind": "AGENT",
                "input.value": json.dumps(
                    {"question": f"where is order A-{rng.randint(1, 9999)}?"}
                ),
                "output.value": "Your order ships tomorrow.",
                "session.id": f"s-{rng.randint(1, 500)}",
                "user.id": f"u-{rng.randint(1, 100)}",
            },
            1,
        )
    ]
    for step in range(3):
        spans.append(("plan", 0, {"openinference.span.kind": "CHAIN", "input.value": "x" * 200}, 1))
        parent = len(spans) - 1
        spans.append(
            (
                "ChatOpenAI",
                parent,
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-mini",
                    "llm.provider": "openai",
                    "llm.token_count.prompt": rng.randint(200, 2000),
                    "llm.token_count.completion": rng.randint(10, 300),
                    "llm.token_count.total": 0,
                    "input.value": "messages " * 40,
                    "output.value": "answer " * 20,
                },
                3,
            )
        )
        spans.append(
            (
                "chat gpt-4o-mini",
                parent,
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.response.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": rng.randint(100, 900),
                    "gen_ai.usage.output_tokens": rng.randint(10, 200),
                },
                3,
            )
        )
        spans.append(
            (
                "orders_status",
                parent,
                {
                    "openinference.span.kind": "TOOL",
                    "tool.name": "orders_status",
                    "input.value": '{"order_id": "A-1001"}',
                    "output.value": '{"status": "shipped"}',
                },
                1,
            )
        )
        if step < 2:
            docs = {
                f"retrieval.documents.{d}.document.{f}": v
                for d in range(3)
                for f, v in (("id", f"doc-{rng.randint(1, 10**6)}"), ("content", "text " * 30))
            }
            spans.append(("retrieve", parent, {"openinference.span.kind": "RETRIEVER", **docs}, 1))
    spans.append(("respond", 0, {"openinference.span.kind": "CHAIN", "output.value": "ok"}, 1))
    assert len(spans) == 16
    return spans


def make_batches(n: int, seed: int = 7) -> list[bytes]:
    """``n`` ExportTraceServiceRequest bodies of 512 spans (32 traces of 16)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    rng = random.Random(seed)
    t0 = time.time_ns() - 3600 * 10**9
    out = []
    for _ in range(n):
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        rs.resource.attributes.append(_kv("service.name", "bench-agent"))
        ss = rs.scope_spans.add()
        ss.scope.name = "openinference.instrumentation.langchain"
        for _t in range(BATCH // 16):
            trace_id = rng.randbytes(16)
            ids = [rng.randbytes(8) for _ in range(16)]
            for i, (name, parent, attrs, kind) in enumerate(_trace_spans(rng, t0)):
                sp = ss.spans.add()
                sp.trace_id = trace_id
                sp.span_id = ids[i]
                if parent >= 0:
                    sp.parent_span_id = ids[parent]
                sp.name = name
                sp.kind = kind  # type: ignore[assignment]
                sp.start_time_unix_nano = t0 + i * 1000
                sp.end_time_unix_nano = t0 + i * 1000 + 500_000
                sp.attributes.extend(_kv(k, v) for k, v in attrs.items())
        out.append(req.SerializeToString())
    return out


# -- servers ------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_schema_url() -> tuple[str, str]:
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


def _drop_pg_schema(schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


def _start(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:] if proc.stderr else "died")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start")


def _daytwo_server(db_url: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str, str, Any]:
    from daytwo.server import KeyStore
    from daytwo.store import Store

    store = Store(db_url)
    store.upgrade()
    key = KeyStore(store).create(role="operator", tenant="bench")[1]
    port = _free_port()
    env = {
        **os.environ,
        "DAYTWO_DATABASE_URL": db_url,
        "DAYTWO_DATA_DIR": str(tmp / "data"),
        "DAYTWO_EMBEDDER": "hashing-384",
    }
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "daytwo.server.app:app_from_env",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = _start(cmd, env, port)

    def count() -> int:
        import sqlalchemy as sa

        with store.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM trace_spans")).scalar_one())

    return proc, f"http://127.0.0.1:{port}", key, (count, store.dispose)


def _bare_server(db_url: str, tmp: Path) -> tuple[subprocess.Popen[bytes], str, str, Any]:
    port = _free_port()
    env = {**os.environ, "BARE_DB_URL": db_url, "PYTHONPATH": str(Path(__file__).parent)}
    cmd = [
        sys.executable, "-m", "uvicorn", "--factory", "_bare_otlp_receiver:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    proc = _start(cmd, env, port)

    def count() -> int:
        from _bare_otlp_receiver import count_rows

        return count_rows(db_url)

    return proc, f"http://127.0.0.1:{port}", "", (count, lambda: None)


# -- one measurement ----------------------------------------------------------------------


def _export(url: str, key: str, batches: list[bytes]) -> dict[str, Any]:
    """Post every batch from 4 threads; wall time from first request to last answer."""
    import httpx

    headers = {"Content-Type": "application/x-protobuf"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    queue = list(enumerate(batches))
    lock = threading.Lock()
    errors: list[str] = []
    latencies: list[float] = []

    def worker() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    _, body = queue.pop()
                t = time.perf_counter()
                r = client.post(f"{url}/v1/traces", content=body, headers=headers)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors.append(f"{r.status_code}: {r.text[:200]}")

    threads = [threading.Thread(target=worker) for _ in range(EXPORTERS)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "wall_s": wall,
        "errors": errors[:3],
        "request_p50_ms": 1000 * latencies[len(latencies) // 2],
        "request_p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def _one(contender: str, backend: str, batches: list[bytes], warmup: list[bytes]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="otlp-bench-") as tmpdir:
        tmp = Path(tmpdir)
        schema = None
        if backend == "sqlite":
            db_url = f"sqlite:///{tmp / 'bench.db'}"
        else:
            db_url, schema = _pg_schema_url()
        start = _daytwo_server if contender == "daytwo" else _bare_server
        proc, url, key, (count, dispose) = start(db_url, tmp)
        try:
            _export(url, key, warmup)
            before = count()
            result = _export(url, key, batches)
            stored = count() - before
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            dispose()
            if schema:
                _drop_pg_schema(schema)
    sent = len(batches) * BATCH
    return {
        "spans_sent": sent,
        "spans_stored": stored,
        "lost": sent - stored,
        "spans_per_s": round(stored / result["wall_s"], 1),
        **{k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items()},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    contenders = ["daytwo", "bare_receiver"]
    # Same bodies for every contender; each round stores them in a fresh database.
    batches = make_batches(args.batches, seed=1)
    warmup = make_batches(4, seed=2)
    rounds: list[dict[str, Any]] = []
    with measuring(args.lock) as measured:
        for r in range(args.rounds):
            row: dict[str, Any] = {
                "round": r + 1,
                "load_avg": [round(x, 2) for x in os.getloadavg()],
            }
            order = contenders if r % 2 == 0 else contenders[::-1]
            for backend in backends:
                for c in order:
                    row[f"{c}/{backend}"] = _one(c, backend, batches, warmup)
                    rate = row[f"{c}/{backend}"]["spans_per_s"]
                    print(f"round {r + 1} {c}/{backend}: {rate} spans/s", file=sys.stderr)
            rounds.append(row)
    summary: dict[str, Any] = {}
    for backend in backends:
        for c in contenders:
            key = f"{c}/{backend}"
            rates = [row[key]["spans_per_s"] for row in rounds]
            summary[key] = {
                "spans_per_s_median": round(statistics.median(rates), 1),
                "spans_per_s_min": min(rates),
                "spans_per_s_max": max(rates),
                "request_p50_ms_median": round(
                    statistics.median(row[key]["request_p50_ms"] for row in rounds), 1
                ),
                "lost_total": sum(row[key]["lost"] for row in rounds),
                "errors": [e for row in rounds for e in row[key]["errors"]][:3],
            }
        d, b = summary[f"daytwo/{backend}"], summary[f"bare_receiver/{backend}"]
        summary[f"daytwo_vs_bare/{backend}"] = round(
            d["spans_per_s_median"] / b["spans_per_s_median"], 3
        )
    target = summary["daytwo/sqlite"]["spans_per_s_median"] >= 10_000
    return {
        "benchmark": "otlp_ingest",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {
            "batch_spans": BATCH,
            "batches_per_round": args.batches,
            "spans_per_round": args.batches * BATCH,
            "exporters": EXPORTERS,
            "rounds": args.rounds,
            "server": "uvicorn, 1 worker process",
            "encoding": "OTLP/HTTP protobuf, uncompressed",
            "peer": "bare_receiver (opentelemetry-proto parse + raw executemany, no auth/pricing)",
        },
        "target": {"daytwo_sqlite_spans_per_s": 10_000, "met": target},
        "summary": summary,
        "rounds": rounds,
        "load": measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the result here")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--batches", type=int, default=BATCHES)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    add_lock_options(parser)
    args = parser.parse_args()
    write_result(args.json, run(args))


if __name__ == "__main__":
    main()
