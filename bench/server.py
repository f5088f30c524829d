"""Server load benchmark: N concurrent HTTP clients against `uvicorn --workers 1|2`.

    python bench/server.py --json bench/results/server.json
    python bench/server.py --topology enqueue --json bench/results/server_enqueue.json

For each backend (SQLite file, PostgreSQL schema) and each worker count (1, 2), once per
round (``--rounds``, default 5; every round runs every configuration, the order reversed
every other round; reported: the median of the rounds, with min and max):

- a real uvicorn server (``--workers N``, separate processes) serves
  ``daytwo.server.create_app`` with an agent runtime whose services are the
  scripted OpenAI-compatible model (one server in this process, shared by all
  workers), Python tools for the sample support agent, and the knowledge base
  (hashing embedder) as its retriever;
- the collection holds four support documents and the first ``--docs`` passages
  (default 2,000) of ``--dataset`` (default: the shared MS MARCO set), loaded
  through the bulk API; search requests cycle through the set's 50 queries (each
  client starts at another one), so no figure rests on one query's postings;
- ``--clients`` concurrent asyncio clients (httpx), each in a loop for
  ``--seconds``: start a run of the sample support agent (``POST /api/v1/runs``),
  then query the knowledge API (``POST /api/v1/knowledge/.../search``);
- afterwards every started run is awaited; a run that does not succeed counts
  as an error.

``--topology enqueue`` (PostgreSQL): the API workers run with
``DAYTWO_SERVE_RUNS=enqueue`` and only record and queue runs; one separate DBOS
worker process (:func:`run_worker`) executes them. 1 and 2 API workers alternate
round by round (``--rounds``, default 5); medians and spreads per configuration, the
second worker's gain per round. Server CPU counts the API workers only; the run
worker's CPU is reported apart (``run_worker_cpu_ms_per_run``).

Reported per configuration: requests/s, runs started/s, p50/p99 latency per
route, error counts and rate, runs succeeded. Targets (issue 10): zero errors at
50 concurrent clients; near-linear gain from the second worker on PostgreSQL.
This machine has 2 cores shared with other work, so the gain is bounded by
the cores actually free; the JSON records ``os.cpu_count()`` and the load.

The factory ``bench_app`` below is what each uvicorn worker imports (the
settings come from ``DAYTWO_*`` variables and ``BENCH_*`` variables set by the
parent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _common import add_lock_options, beir_rows, measuring

ROOT = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get("DAYTWO_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ANSWER = '{"answer": "Your order ships tomorrow.", "needs_human": false}'
DOCS = [
    ("shipping", "Shipping", "Orders ship within two business days from our warehouse."),
    ("returns", "Returns", "You can return any item within 30 days for a full refund."),
    ("warranty", "Warranty", "Electronics carry a two year warranty against defects."),
    ("tracking", "Tracking", "Track your order with the link in the confirmation email."),
]


# -- the app each uvicorn worker builds ---------------------------------------------------


def _sample_stacks(path: str, interval: float = 0.005) -> None:
    """A sampling profiler of every thread of this worker (``BENCH_PROFILE=<file>``).

    Every ``interval`` seconds, each thread's stack that is not waiting in a known
    idle function is counted; the file (rewritten every 2 s, one worker per pid) holds
    collapsed stacks (``frame;frame;... count``) for flamegraph tools, and the top
    self/inclusive frames.
    """
    import collections
    import threading
    import traceback

    idle = {"wait", "select", "_worker", "poll", "get", "sleep", "run_forever", "_run_once"}
    stacks: collections.Counter[str] = collections.Counter()
    me = threading.get_ident()

    def loop() -> None:
        last = time.monotonic()
        while True:
            time.sleep(interval)
            for tid, frame in sys._current_frames().items():
                if tid == me:
                    continue
                summary = traceback.extract_stack(frame)
                if not summary or summary[-1].name in idle:
                    continue
                stacks[";".join(f"{Path(f.filename).name}:{f.name}" for f in summary)] += 1
            if time.monotonic() - last > 2:
                last = time.monotonic()
                lines = [f"{k} {v}" for k, v in stacks.most_common()]
                Path(f"{path}.{os.getpid()}").write_text("\n".join(lines) + "\n")

    me_thread = threading.Thread(target=loop, daemon=True, name="bench-sampler")
    me_thread.start()
    me = me_thread.ident or 0


def _bench_runtime(*, enqueue_only: bool) -> tuple[Any, Any, Any, Any]:
    """(settings, store, knowledge base, runtime) for the sample agent (scripted model)."""
    from daytwo.knowledge.service import KnowledgeBase
    from daytwo.runtime import (
        CallableRetriever,
        PythonTools,
        Runtime,
        Services,
        StaticTelemetry,
    )
    from daytwo.runtime.adapters import ModelLLM
    from daytwo.server.services import audit_log
    from daytwo.settings import load_settings
    from daytwo.store import Store
    from daytwo.testing import scripted_chat_model

    settings = load_settings()
    store = Store.from_settings(settings)
    kb = KnowledgeBase(store, settings.data_dir, settings.embedder)
    tools = PythonTools()
    for name in ("orders_status_cached", "orders_status_live"):
        tools.add(
            name,
            lambda order_id, idempotency_key: {"order_id": order_id, "status": "shipped"},
            capability="orders.status",
        )

    def retrieve(collection: str, query: str, k: int) -> list[dict[str, Any]]:
        hits = kb.search(collection, query, "bench", [], mode="bm25", k=k)
        return [h.to_dict() for h in hits]

    services = Services(
        tools=tools,
        telemetry=StaticTelemetry(),
        retriever=CallableRetriever(retrieve),
        llm=ModelLLM(scripted_chat_model(os.environ["BENCH_MODEL_URL"])),
        audit=audit_log(settings, store),
    )
    runtime = Runtime(
        store,
        services,
        data_dir=settings.data_dir,
        dbos_schema=os.environ.get("BENCH_DBOS_SCHEMA", "dbos"),
        executor_id=None if enqueue_only else f"bench-{os.getpid()}",
        enqueue_only=enqueue_only,
    )
    return settings, store, kb, runtime


def bench_app() -> Any:
    """uvicorn factory: the daytwo app with a runtime for the sample agent (scripted model).

    ``DAYTWO_SERVE_RUNS=enqueue``: the runtime only queues runs (for :func:`run_worker`).
    """
    if os.environ.get("BENCH_PROFILE"):
        _sample_stacks(os.environ["BENCH_PROFILE"])
    from daytwo.server import create_app

    enqueue_only = os.environ.get("DAYTWO_SERVE_RUNS") == "enqueue"
    settings, store, kb, runtime = _bench_runtime(enqueue_only=enqueue_only)
    return create_app(settings, store, runtime=runtime, knowledge=kb)


def run_worker() -> None:
    """The DBOS worker process of the enqueue topology: executes queued runs until stdin closes."""
    from daytwo.server.services import start_tracing

    settings, store, kb, runtime = _bench_runtime(enqueue_only=False)
    start_tracing(settings, store)
    runtime.launch()
    print("ready", flush=True)
    sys.stdin.read()
    runtime.shutdown()
    kb.close()
    store.dispose()


# -- the parent: set up, serve, load, measure --------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_ticks() -> dict[int, tuple[str, int, int]]:
    """pid -> (command, session id, user+system clock ticks) of every process."""
    out: dict[int, tuple[str, int, int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        out[int(entry.name)] = (comm, int(fields[3]), int(fields[11]) + int(fields[12]))
    return out


def _machine_busy_ticks() -> int:
    """Ticks all CPUs spent not idle (nor waiting for I/O), from /proc/stat."""
    parts = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(parts) - parts[3] - parts[4]


def _cpu_split(
    before: dict[int, tuple[str, int, int]],
    after: dict[int, tuple[str, int, int]],
    server_sid: int,
    model_pid: int,
    worker_sid: int = -1,
) -> dict[str, float]:
    """CPU seconds spent during the load by the server, the run worker (enqueue topology),
    the model, PostgreSQL, this client."""
    groups = {"server_workers": 0, "run_worker": 0, "scripted_model": 0, "postgres": 0}
    for pid, (comm, sid, ticks) in after.items():
        delta = ticks - (before[pid][2] if pid in before else 0)
        if sid == server_sid:
            groups["server_workers"] += delta
        elif sid == worker_sid:
            groups["run_worker"] += delta
        elif pid == model_pid:
            groups["scripted_model"] += delta
        elif comm == "postgres":
            groups["postgres"] += delta
    return {k: round(v / _TICK, 2) for k, v in groups.items()}


def _start_model() -> tuple[subprocess.Popen[str], str]:
    """The scripted model server in its own process (so its CPU is counted apart)."""
    code = (
        "import sys\n"
        "from daytwo.testing import ScriptedModelServer\n"
        "s = ScriptedModelServer(default=sys.argv[1]).start()\n"
        "print(s.base_url, flush=True)\n"
        "sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, ANSWER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[idx], 2)


def _prepare(env: dict[str, str]) -> tuple[str, str]:
    """Migrate, create a key, register the sample agent; return (admin key, collection)."""
    from importlib import resources

    from daytwo.runtime import parse_spec_text
    from daytwo.runtime.registry import AgentRegistry
    from daytwo.server import KeyStore
    from daytwo.settings import load_settings
    from daytwo.store import Store

    saved = dict(os.environ)
    os.environ.update(env)
    try:
        settings = load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    store = Store.from_settings(settings)
    try:
        store.upgrade()
        # Tenant "default": the agent registered here on the host belongs to it.
        _, key = KeyStore(store).create(role="admin", tenant="default", name="bench")
        text = (resources.files("daytwo.runtime.samples") / "support.yaml").read_text()
        spec = parse_spec_text(text)
        AgentRegistry(store).register(spec)
    finally:
        store.dispose()
    # The collection the sample agent's retrieve step reads (the bench fills it).
    collection = next(
        str(step.collection) for step in spec.steps if getattr(step, "kind", "") == "retrieve"
    )
    return key, collection


def _start_run_worker(env: dict[str, str], log_path: Path) -> subprocess.Popen[str]:
    """The separate DBOS worker process of the enqueue topology (its own session)."""
    path = os.pathsep.join(
        p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p
    )
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import server; server.run_worker()"],
            env={**os.environ, **env, "PYTHONPATH": path},
            cwd=str(ROOT),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"run worker did not start: {log_path.read_text()[-2000:]}")
    return proc


def _stop_run_worker(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _start_server(
    env: dict[str, str], workers: int, log_path: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "server:bench_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--timeout-graceful-shutdown",
        "5",
    ]
    # The bench directory for this module, then the caller's path (a worktree's src).
    path = os.pathsep.join(
        p for p in (str(Path(__file__).parent), os.environ.get("PYTHONPATH")) if p
    )
    full_env = {**os.environ, **env, "PYTHONPATH": path}
    # The server's log goes to a file: an unread pipe would block the workers once full.
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=full_env, cwd=str(ROOT), start_new_session=True, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                time.sleep(1.0 * workers)  # let every worker finish its own start-up
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    _stop(proc)
    raise RuntimeError("server did not start")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def _load(
    url: str,
    key: str,
    collection: str,
    clients: int,
    seconds: float,
    pids: tuple[int, ...],
    routes: tuple[str, ...] = ("start_run", "search"),
    search_mode: str = "bm25",
    queries: tuple[str, ...] = ("shipping time",),
) -> dict[str, Any]:
    import resource

    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    lat: dict[str, list[float]] = {"start_run": [], "search": []}
    errors: dict[str, int] = {"start_run": 0, "search": 0}
    examples: list[str] = []
    run_ids: list[str] = []
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async def one(client: httpx.AsyncClient, route: str, method: str, path: str, body: Any) -> Any:
        t0 = time.perf_counter()
        try:
            r = await client.request(method, path, json=body, headers=headers)
            ok = r.status_code < 400
            data = r.json() if ok else None
            if not ok and len(examples) < 5:
                examples.append(f"{route}: {r.status_code} {r.text[:200]}")
        except Exception as exc:
            ok, data = False, None
            if len(examples) < 5:
                examples.append(f"{route}: {type(exc).__name__}: {exc}")
        lat[route].append((time.perf_counter() - t0) * 1000)
        if not ok:
            errors[route] += 1
        return data

    async def client_loop(i: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
            n = 0
            while time.monotonic() < stop_at:
                if "start_run" in routes:
                    inputs = {"question": "when will my order ship?", "order_id": f"A-{i}-{n}"}
                    body = {"agent": "support", "inputs": inputs}
                    data = await one(client, "start_run", "POST", "/api/v1/runs", body)
                    if data:
                        run_ids.append(data["id"])
                if "search" in routes:
                    await one(
                        client,
                        "search",
                        "POST",
                        f"/api/v1/knowledge/collections/{collection}/search",
                        {"query": queries[(i + n) % len(queries)], "mode": search_mode, "k": 3},
                    )
                n += 1

    server_sid, model_pid, worker_sid = (*pids, -1)[:3]
    ticks0, busy0 = _cpu_ticks(), _machine_busy_ticks()
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(client_loop(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = _cpu_split(ticks0, _cpu_ticks(), server_sid, model_pid, worker_sid)
    cpu["load_client"] = round(self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime, 2)
    cpu["machine_busy"] = round((_machine_busy_ticks() - busy0) / _TICK, 2)
    cpu["everything_else"] = round(
        cpu["machine_busy"] - sum(v for k, v in cpu.items() if k != "machine_busy"), 2
    )

    # Every started run must finish successfully.
    run_status: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        deadline = time.monotonic() + 180
        pending = set(run_ids)
        while pending and time.monotonic() < deadline:
            listed = await client.get("/api/v1/runs?limit=500", headers=headers)
            # The list holds the newest 500; fetch the others one by one.
            by_id = {r["id"]: r["status"] for r in listed.json()}
            for rid in list(pending):
                status = by_id.get(rid)
                if status is None:
                    r = await client.get(f"/api/v1/runs/{rid}", headers=headers)
                    status = r.json().get("status") if r.status_code == 200 else "missing"
                if status in {"succeeded", "failed", "cancelled", "missing"}:
                    run_status[status] = run_status.get(status, 0) + 1
                    pending.discard(rid)
                    if status != "succeeded" and len(examples) < 5:
                        r = await client.get(f"/api/v1/runs/{rid}", headers=headers)
                        examples.append(f"run {status}: {str(r.json().get('error'))[:200]}")
            if pending:
                await asyncio.sleep(0.5)
        if pending:
            run_status["unfinished"] = len(pending)
    # Server CPU until every run started in the load finished (the runs execute in the
    # API workers here), including the status polling above.
    settled_cpu = _cpu_split(ticks0, _cpu_ticks(), server_sid, model_pid, worker_sid)
    settled = settled_cpu["server_workers"]
    requests = sum(len(v) for v in lat.values())
    failed_runs = sum(v for k, v in run_status.items() if k != "succeeded")
    total_errors = sum(errors.values()) + failed_runs
    return {
        "seconds": round(elapsed, 2),
        "requests": requests,
        "requests_per_s": round(requests / elapsed, 1),
        "runs_started": len(run_ids),
        "runs_started_per_s": round(len(run_ids) / elapsed, 1),
        "runs": run_status,
        "latency_ms": {
            route: {"p50": _pct(v, 50), "p99": _pct(v, 99), "mean": round(statistics.mean(v), 2)}
            for route, v in lat.items()
            if v
        },
        "http_errors": errors,
        "failed_runs": failed_runs,
        "errors": total_errors,
        "error_rate": round(total_errors / max(requests, 1), 5),
        "error_examples": examples,
        # CPU seconds during the load phase (wall time ``seconds``; 2 cores = 2 s per s).
        "cpu_s": cpu,
        "server_cores_used": round(cpu["server_workers"] / elapsed, 2),
        "server_cpu_ms_per_request": round(1000 * cpu["server_workers"] / max(requests, 1), 1),
        "server_cpu_ms_per_request_until_runs_settled": round(1000 * settled / max(requests, 1), 1),
        # Enqueue topology: the run worker's CPU per run started, until every run settled.
        "run_worker_cpu_ms_per_run": round(
            1000 * settled_cpu["run_worker"] / max(len(run_ids), 1), 1
        ),
    }


def _dataset(path: Path | None, docs: int) -> tuple[list[dict[str, str]], tuple[str, ...]]:
    """The first ``docs`` passages and every query of a BEIR-layout set (none: the
    four support documents only, and one query)."""
    if path is None:
        return [], ("shipping time",)
    if not (path / "corpus.jsonl").is_file() or not (path / "queries.jsonl").is_file():
        raise SystemExit(
            f"error: {path} is not a BEIR-layout set (corpus.jsonl, queries.jsonl); "
            "pass --dataset PATH or --dataset none"
        )
    passages = [
        {"doc_id": f"p-{row['_id']}", "title": row.get("title") or "", "text": row["text"]}
        for row in beir_rows(path, "corpus.jsonl", docs)
    ]
    queries = tuple(row["text"] for row in beir_rows(path, "queries.jsonl"))
    return passages, queries


def _seed_collection(url: str, key: str, collection: str, args: argparse.Namespace) -> None:
    """The support documents (one PUT each) and the set's passages (bulk NDJSON)."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    base = f"{url}/api/v1/knowledge/collections/{collection}"
    for doc_id, title, text in DOCS:
        httpx.put(
            f"{base}/documents",
            json={"doc_id": doc_id, "title": title, "text": text},
            headers=headers,
            timeout=60,
        ).raise_for_status()
    for start in range(0, len(args.passages), 500):
        body = "\n".join(json.dumps(p) for p in args.passages[start : start + 500]) + "\n"
        r = httpx.post(
            f"{base}/bulk",
            content=body.encode(),
            headers={**headers, "Content-Type": "application/x-ndjson"},
            timeout=600,
        )
        r.raise_for_status()
        if r.json()["error"]:
            raise RuntimeError(f"bulk load failed: {r.text[:300]}")


def _kind_phase(
    url: str,
    key: str,
    collection: str,
    args: argparse.Namespace,
    pids: tuple[int, ...],
    kind: str,
) -> dict[str, Any]:
    """One phase of a single kind of request (``search`` or ``start_run``), all clients."""
    return asyncio.run(
        _load(
            url,
            key,
            collection,
            args.clients,
            args.kind_seconds,
            pids,
            (kind,),
            args.search_mode,
            args.queries,
        )
    )


_KIND_FIELDS = (
    "requests",
    "requests_per_s",
    "latency_ms",
    "errors",
    "error_examples",
    "server_cores_used",
    "server_cpu_ms_per_request",
    "server_cpu_ms_per_request_until_runs_settled",
)


def _config(
    backend: str, workers: int, args: argparse.Namespace, model: tuple[int, str]
) -> dict[str, Any]:
    import sqlalchemy as sa

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-server-{backend}-"))
    env = {
        "DAYTWO_DATA_DIR": str(tmp / "data"),
        "DAYTWO_EMBEDDER": args.embedder,
        "BENCH_MODEL_URL": model[1],
    }
    schema = None
    if backend == "postgres":
        schema = f"bench_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        env["DAYTWO_DATABASE_URL"] = f"{PG_URL}?options=-csearch_path%3D{schema}"
        env["BENCH_DBOS_SCHEMA"] = f"{schema}_dbos"
    try:
        key, collection = _prepare(env)
        proc, url = _start_server(env, workers, tmp / "server.log")
        try:
            _seed_collection(url, key, collection, args)
            # What the idle server burns (DBOS queue polling, lease caretaker): the
            # per-request figures below also come net of it.
            ticks0, t_idle = _cpu_ticks(), time.perf_counter()
            time.sleep(args.idle_seconds)
            idle_s = _cpu_split(ticks0, _cpu_ticks(), proc.pid, model[0])["server_workers"]
            idle_cores = idle_s / (time.perf_counter() - t_idle)
            load1 = os.getloadavg()[0]
            phase_load = round(load1, 2)
            pids = (proc.pid, model[0])
            # One kind of request at a time first: the server CPU per request of each.
            by_kind = {}
            for kind in ("search", "start_run"):
                phase = _kind_phase(url, key, collection, args, pids, kind)
                net = phase["server_cores_used"] - idle_cores
                by_kind[kind] = {
                    "load_avg_before": phase_load,
                    **{k: phase[k] for k in _KIND_FIELDS},
                    "server_cpu_ms_per_request_net_of_idle": round(
                        1000 * net * phase["seconds"] / max(phase["requests"], 1), 1
                    ),
                }
                phase_load = round(os.getloadavg()[0], 2)
            result = asyncio.run(
                _load(
                    url,
                    key,
                    collection,
                    args.clients,
                    args.seconds,
                    pids,
                    search_mode=args.search_mode,
                    queries=args.queries,
                )
            )
        finally:
            _stop(proc)
    finally:
        if schema is not None:
            with admin.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}_dbos" CASCADE'))
            admin.dispose()
    return {
        "backend": backend,
        "workers": workers,
        "clients": args.clients,
        "load_avg_before": round(load1, 2),
        "server_idle_cores": round(idle_cores, 3),
        **result,
        "by_kind": by_kind,
    }


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "median": round(statistics.median(values), 2),
        "min": round(min(values), 2),
        "max": round(max(values), 2),
    }


def _inline_summary(backend: str, workers: int, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One configuration over the rounds: medians (with min and max in ``*_spread``) of the
    per-round figures; errors summed."""
    mine = [r for r in rounds if r["backend"] == backend and r["workers"] == workers]
    out: dict[str, Any] = {
        "backend": backend,
        "workers": workers,
        "clients": mine[0]["clients"],
        "rounds": len(mine),
        "load_avg_before": _spread([r["load_avg_before"] for r in mine])["median"],
        "errors": sum(r["errors"] for r in mine),
        "runs": {
            status: sum(r["runs"].get(status, 0) for r in mine)
            for status in sorted({s for r in mine for s in r["runs"]})
        },
        "error_examples": [e for r in mine for e in r["error_examples"]][:5],
    }
    for field in ("requests_per_s", "runs_started_per_s", "server_cores_used"):
        out[field] = _spread([r[field] for r in mine])["median"]
    for field in ("server_cpu_ms_per_request", "server_cpu_ms_per_request_until_runs_settled"):
        out[f"{field}_spread"] = spread = _spread([r[field] for r in mine])
        out[field] = spread["median"]
    by_kind: dict[str, Any] = {}
    for kind in ("search", "start_run"):
        phases = [r["by_kind"][kind] for r in mine]
        cpu = _spread([p["server_cpu_ms_per_request"] for p in phases])
        by_kind[kind] = {
            "requests_per_s": _spread([p["requests_per_s"] for p in phases])["median"],
            "p50_ms": _spread([p["latency_ms"][kind]["p50"] for p in phases]),
            "errors": sum(p["errors"] for p in phases),
            "server_cpu_ms_per_request": cpu["median"],
            "server_cpu_ms_per_request_spread": cpu,
            "server_cpu_ms_per_request_net_of_idle": _spread(
                [p["server_cpu_ms_per_request_net_of_idle"] for p in phases]
            )["median"],
        }
    out["by_kind"] = by_kind
    return out


def _enqueue_topology(args: argparse.Namespace, model: tuple[int, str]) -> dict[str, Any]:
    """API workers that only queue runs + one DBOS worker process, on PostgreSQL.

    One schema and one run worker for the whole bench; each round starts the API with
    1 and then 2 uvicorn workers (the order alternates), runs a search-only and a
    start-run-only phase, and waits until every started run finished (the run worker
    drains the queue before the next configuration is measured).
    """
    import sqlalchemy as sa

    tmp = Path(tempfile.mkdtemp(prefix="bench-server-enqueue-"))
    # A database of its own (not a schema of the shared one): dropping it afterwards
    # cannot take an extension (pg_trgm) other sessions' schemas use along with it.
    database = f"bench_enqueue_{uuid.uuid4().hex[:8]}"
    url = sa.engine.make_url(PG_URL)
    env = {
        "DAYTWO_DATA_DIR": str(tmp / "data"),
        "DAYTWO_EMBEDDER": args.embedder,
        "DAYTWO_SERVE_RUNS": "enqueue",
        "BENCH_MODEL_URL": model[1],
        "DAYTWO_DATABASE_URL": url.set(database=database).render_as_string(hide_password=False),
        "BENCH_DBOS_SCHEMA": "dbos",
    }
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    rounds: list[dict[str, Any]] = []
    try:
        key, collection = _prepare(env)
        worker = _start_run_worker(env, tmp / "worker.log")
        try:
            for n in range(args.rounds):
                order = args.workers if n % 2 == 0 else list(reversed(args.workers))
                for workers in order:
                    proc, url = _start_server(env, workers, tmp / "server.log")
                    try:
                        if n == 0 and workers == order[0]:
                            _seed_collection(url, key, collection, args)
                        pids = (proc.pid, model[0], worker.pid)
                        entry: dict[str, Any] = {
                            "round": n,
                            "api_workers": workers,
                            "load_avg_before": round(os.getloadavg()[0], 2),
                        }
                        for kind in ("search", "start_run"):
                            phase = _kind_phase(url, key, collection, args, pids, kind)
                            entry[kind] = {
                                **{k: phase[k] for k in _KIND_FIELDS},
                                "cpu_s": phase["cpu_s"],
                                # Cores used by processes other than the bench's own.
                                "other_work_cores": round(
                                    phase["cpu_s"]["everything_else"] / phase["seconds"], 2
                                ),
                                "run_worker_cpu_ms_per_run": phase["run_worker_cpu_ms_per_run"],
                            }
                        print(json.dumps(entry), flush=True)
                        rounds.append(entry)
                    finally:
                        _stop(proc)
        finally:
            _stop_run_worker(worker)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        admin.dispose()
    summary: dict[str, Any] = {}
    for workers in args.workers:
        mine = [r for r in rounds if r["api_workers"] == workers]
        summary[str(workers)] = {
            kind: {
                "requests_per_s": _spread([r[kind]["requests_per_s"] for r in mine]),
                "server_cpu_ms_per_request": _spread(
                    [r[kind]["server_cpu_ms_per_request"] for r in mine]
                ),
                "p50_ms": _spread([r[kind]["latency_ms"][kind]["p50"] for r in mine]),
                "errors": sum(r[kind]["errors"] for r in mine),
            }
            for kind in ("search", "start_run")
        }
        summary[str(workers)]["start_run"]["run_worker_cpu_ms_per_run"] = _spread(
            [r["start_run"]["run_worker_cpu_ms_per_run"] for r in mine]
        )
    gain = {}
    if {1, 2} <= set(args.workers):
        for kind in ("search", "start_run"):
            # Per round: the 2-worker over the 1-worker throughput of the same round.
            ratios = [
                b[kind]["requests_per_s"] / max(a[kind]["requests_per_s"], 0.01)
                for a, b in zip(
                    [r for r in rounds if r["api_workers"] == 1],
                    [r for r in rounds if r["api_workers"] == 2],
                    strict=False,
                )
            ]
            gain[kind] = _spread(ratios)
    loads = [r["load_avg_before"] for r in rounds]
    other = [r[kind]["other_work_cores"] for r in rounds for kind in ("search", "start_run")]
    return {
        "benchmark": "server_enqueue",
        "topology": "N uvicorn API workers (DAYTWO_SERVE_RUNS=enqueue) + 1 DBOS run worker, "
        "PostgreSQL",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "params": {
            "clients": args.clients,
            "kind_seconds": args.kind_seconds,
            "embedder": args.embedder,
            "search_mode": args.search_mode,
            "rounds": args.rounds,
            "collection_docs": len(DOCS) + len(args.passages),
            "distinct_queries": len(args.queries),
        },
        "load_avg": _spread(loads),
        "other_work_cores": _spread(other),
        "by_api_workers": summary,
        "second_api_worker_gain": gain,
        "targets": {
            "start_run_server_cpu_ms_le_10": all(
                v["start_run"]["server_cpu_ms_per_request"]["median"] <= 10
                for v in summary.values()
            ),
            "search_server_cpu_ms_le_5": all(
                v["search"]["server_cpu_ms_per_request"]["median"] <= 5 for v in summary.values()
            ),
            "zero_errors": all(v[k]["errors"] == 0 for v in summary.values() for k in v),
            "second_worker_gain_ge_1_7": bool(gain) and gain["start_run"]["median"] >= 1.7,
        },
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument(
        "--kind-seconds",
        type=float,
        default=10.0,
        help="length of the search-only and start-run-only phases before the mixed load",
    )
    parser.add_argument(
        "--embedder",
        default="hashing-384",
        help="DAYTWO_EMBEDDER of the server (minilm: the query is embedded per dense search)",
    )
    parser.add_argument(
        "--search-mode",
        choices=["bm25", "dense", "hybrid"],
        default="bm25",
        help="mode of the search requests (the API's default is hybrid)",
    )
    parser.add_argument(
        "--dataset",
        default=str(ROOT.parent / "shared" / "datasets" / "msmarco"),
        help="BEIR-layout set whose first --docs passages join the collection and whose "
        "queries the search requests cycle through ('none': four documents, one query)",
    )
    parser.add_argument("--docs", type=int, default=2000, help="passages loaded from --dataset")
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument(
        "--topology",
        choices=["inline", "enqueue"],
        default="inline",
        help="inline: the API workers execute the runs; enqueue: they only queue them "
        "and one separate DBOS worker process executes them (PostgreSQL only)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="rounds; each runs every configuration once (the order alternates)",
    )
    parser.add_argument(
        "--max-other-cores",
        type=float,
        default=0.5,
        help="enqueue topology: --json is not written when, in some phase, processes "
        "other than the bench's own used more cores than this (the figures then say more "
        "about the other work than about daytwo; the load average cannot tell, it counts "
        "the bench's own clients and servers)",
    )
    add_lock_options(parser)
    args = parser.parse_args()
    dataset = None if args.dataset == "none" else Path(args.dataset)
    args.passages, args.queries = _dataset(dataset, args.docs)
    if args.topology == "enqueue":
        model_proc, model_url = _start_model()
        try:
            with measuring(args.lock) as measured:
                out = _enqueue_topology(args, (model_proc.pid, model_url))
            out["lock"] = measured
        finally:
            assert model_proc.stdin is not None
            model_proc.stdin.close()
            model_proc.wait(timeout=30)
        text = json.dumps(out, indent=2)
        other = out["other_work_cores"]["max"]
        if args.json and other <= args.max_other_cores:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(text + "\n")
        elif args.json:
            print(f"other work used up to {other} cores: {args.json} not written")
        print(text)
        return

    combos = [(backend, workers) for backend in args.backends for workers in args.workers]
    rounds: list[dict[str, Any]] = []
    model_proc, model_url = _start_model()
    try:
        with measuring(args.lock) as measured:
            for n in range(args.rounds):
                # Interleaved: every configuration once per round, the order reversed every
                # other round (a drift in the machine's load hits every configuration alike).
                for backend, workers in combos if n % 2 == 0 else combos[::-1]:
                    print(
                        f"round {n + 1}/{args.rounds}: {backend}, {workers} worker(s), "
                        f"{args.clients} clients ...",
                        flush=True,
                    )
                    res = _config(backend, workers, args, (model_proc.pid, model_url))
                    print(json.dumps(res), flush=True)
                    rounds.append({"round": n, **res})
    finally:
        assert model_proc.stdin is not None
        model_proc.stdin.close()
        model_proc.wait(timeout=30)
    configs = [_inline_summary(backend, workers, rounds) for backend, workers in combos]
    gains: dict[str, dict[str, float]] = {}
    core_gains: dict[str, dict[str, float]] = {}
    for backend in args.backends:
        one, two = (
            [r for r in rounds if r["backend"] == backend and r["workers"] == w] for w in (1, 2)
        )
        if one and two:
            # Per round: the 2-worker over the 1-worker figure of the same round.
            pairs = list(zip(one, two, strict=False))
            gains[backend] = _spread(
                [b["requests_per_s"] / max(a["requests_per_s"], 0.01) for a, b in pairs]
            )
            core_gains[backend] = _spread(
                [b["server_cores_used"] / max(a["server_cores_used"], 0.01) for a, b in pairs]
            )
    out = {
        "benchmark": "server",
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
        },
        "params": {
            "clients": args.clients,
            "seconds": args.seconds,
            "embedder": args.embedder,
            "search_mode": args.search_mode,
            "collection_docs": len(DOCS) + len(args.passages),
            "distinct_queries": len(args.queries),
            "rounds": args.rounds,
        },
        "lock": measured,
        "configs": configs,
        "two_worker_gain": gains,
        # How much more CPU the server got with two workers: a CPU-bound server can only
        # gain what it is given; compare with two_worker_gain.
        "two_worker_server_cpu_gain": core_gains,
        "targets": {
            "zero_errors_at_50_clients": all(
                c["errors"] == 0 for c in configs if c["clients"] >= 50
            ),
            "note": "near-linear gain means two_worker_gain close to 2.0 on postgres",
        },
        "rounds": rounds,
    }
    text = json.dumps(out, indent=2)
    if args.json:  # before printing: a closed stdout must not lose the results
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
