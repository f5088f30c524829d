"""Gateway benchmark: semantic-drift detection and per-call overhead.

    python bench/gateway.py --json bench/results/gateway.json

1. **Drift detection delay** — responses until the first alert after the
   backend switches, through the real gateway (policy ``flag``), averaged over
   several seeds: ``risk_score`` float 0–1 -> "LOW"/"MEDIUM"/"HIGH", and a unit
   change 0–1 -> 0–100. Each with the field declared in the contract
   (type number, range 0–1) and with no declaration (learned profile only).
   Target: within 20 responses.
2. **False alarms** — 100k stable responses (beta-distributed score, gaussian
   latency, a 3-way category, a nullable note) through the gateway, declared and
   learned fields together. Target: zero alerts.
3. **Overhead per call** — the sample ``orders_status_cached`` backend called
   directly vs through ``Gateway.call`` (auth by agent name, rate limit,
   input validation, adapter, drift, output validation, injection scan,
   telemetry, an OpenTelemetry SDK span) in-process; and over MCP Streamable
   HTTP, the gateway's endpoint vs the official SDK's ``MCPServer`` serving the
   same function (the peer). Target: in-process p99 overhead < 1 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import MIN_ROUNDS, add_lock_options, measuring, summary, write_result
from daytwo.gateway import Gateway
from daytwo.gateway.samples import orders_status_cached, register_samples
from daytwo.store import Store

WARMUP = 100


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Risk:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.mode = "float"

    def __call__(self) -> dict[str, Any]:
        r = self.rng
        score = r.betavariate(2, 5)
        if self.mode == "category":
            value: Any = "LOW" if score < 0.3 else "MEDIUM" if score < 0.6 else "HIGH"
        elif self.mode == "percent":
            value = round(score * 100, 2)
        else:
            value = score
        return {
            "risk_score": value,
            "latency_ms": r.gauss(120, 20),
            "tier": r.choice(["gold", "silver", "bronze"]),
            "note": None if r.random() < 0.1 else "ok",
        }


def _tool(name: str, declared: bool) -> dict[str, Any]:
    exp = {"risk_score": {"type": "number", "minimum": 0, "maximum": 1, "unit": "probability"}}
    return {
        "name": name,
        "capability": "risk.score",
        "version": "1.0.0",
        "expectations": exp if declared else {},
        "backend": {"type": "python", "callable": name},
        "policy": {"drift": "flag", "warmup": WARMUP},
    }


def detection(store: Store, seeds: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for switch in ("category", "percent"):
        for declared in (True, False):
            delays: list[int] = []
            for seed in range(seeds):
                gw = Gateway(store, audit=False)
                name = f"risk_{switch}_{int(declared)}_{seed}"
                backend = Risk(seed)
                gw.register_python(name, backend)
                gw.register(_tool(name, declared))
                for _ in range(WARMUP + 50):
                    if gw.call(name, {}).alerts:
                        raise SystemExit(f"false alarm before the switch in {name}")
                backend.mode = switch
                delay = -1
                for i in range(1, 201):
                    if gw.call(name, {}).alerts:
                        delay = i
                        break
                delays.append(delay)
                gw.close()
            key = f"{'float_to_category' if switch == 'category' else 'unit_0_1_to_0_100'}_" + (
                "declared" if declared else "learned"
            )
            found = [d for d in delays if d > 0]
            out[key] = {
                "trials": seeds,
                "detected": len(found),
                "mean_delay": round(statistics.mean(found), 2) if found else None,
                "max_delay": max(found) if found else None,
                "within_20": sum(1 for d in found if d <= 20),
            }
    return out


def false_alarms(store: Store, n: int) -> dict[str, Any]:
    gw = Gateway(store, audit=False)
    name = "risk_stable"
    gw.register_python(name, Risk(12345))
    gw.register(_tool(name, True))
    alerts = 0
    started = time.perf_counter()
    for _ in range(n):
        alerts += len(gw.call(name, {}).alerts)
    elapsed = time.perf_counter() - started
    gw.close()
    return {"responses": n, "alerts": alerts, "seconds": round(elapsed, 1)}


def overhead_in_process(store: Store, n: int) -> dict[str, Any]:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
    trace.set_tracer_provider(provider)
    gw = Gateway(store, audit=False)
    register_samples(gw)
    gw.create_agent("bench", ["cap:orders.*"], rate_limit="1000000/second")
    args = {"order_id": "A-1001"}
    for _ in range(2000):
        gw.call("orders_status_cached", args, agent="bench")
        orders_status_cached(**args)
    direct: list[float] = []
    via: list[float] = []
    direct_cpu: list[float] = []
    via_cpu: list[float] = []
    clock, cpu = time.perf_counter, time.thread_time
    for _ in range(n):
        t0, c0 = clock(), cpu()
        orders_status_cached(**args)
        t1, c1 = clock(), cpu()
        gw.call("orders_status_cached", args, agent="bench")
        t2, c2 = clock(), cpu()
        direct.append((t1 - t0) * 1000)
        via.append((t2 - t1) * 1000)
        direct_cpu.append((c1 - c0) * 1000)
        via_cpu.append((c2 - c1) * 1000)
    gw.close()
    provider.shutdown()
    # The calls alternate (direct, gateway) one by one; the n pairs are also cut into
    # MIN_ROUNDS consecutive rounds to give the spread of the per-round p50 overhead.
    size = n // MIN_ROUNDS
    per_round = [
        _pct(via_cpu[i : i + size], 0.5) - _pct(direct_cpu[i : i + size], 0.5)
        for i in range(0, size * MIN_ROUNDS, size)
    ]
    return {
        "wall_clock": _summary(direct, via, n),
        "thread_cpu_time": _summary(direct_cpu, via_cpu, n),
        "overhead_p50_ms_cpu_per_round": summary(per_round, 4),
        "note": "wall clock includes waits for the CPU on a shared, oversubscribed machine "
        "(see load_average); thread CPU time is the work the gateway itself does per call",
    }


def _summary(direct: list[float], via: list[float], n: int) -> dict[str, Any]:
    res: dict[str, Any] = {"calls": n}
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")):
        d, v = _pct(direct, q), _pct(via, q)
        res[f"direct_{label}_ms"] = round(d, 4)
        res[f"gateway_{label}_ms"] = round(v, 4)
        res[f"overhead_{label}_ms"] = round(v - d, 4)
    return res


def overhead_mcp(store: Store, n: int) -> dict[str, Any]:
    import anyio
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.server.mcpserver import MCPServer

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from daytwo.gateway.mcp_server import mcp_asgi_app
    from gateway.conftest import AsgiServer  # the tests' real uvicorn runner

    gw = Gateway(store, audit=False)
    register_samples(gw)
    key = gw.create_agent("bench-mcp", ["cap:orders.*"])
    peer = MCPServer("peer")
    peer.tool()(orders_status_cached)
    servers = {
        "gateway": (AsgiServer(mcp_asgi_app(gw)), {"Authorization": f"Bearer {key}"}),
        "peer_mcpserver": (
            AsgiServer(peer.streamable_http_app(json_response=True, stateless_http=True)),
            {},
        ),
    }

    async def measure() -> dict[str, list[float]]:
        """Both clients open at once; calls alternate so both see the same machine load."""
        from contextlib import AsyncExitStack

        lat: dict[str, list[float]] = {label: [] for label in servers}
        async with AsyncExitStack() as stack:
            clients = {}
            for label, (server, headers) in servers.items():
                transport = streamable_http_client(
                    server.url + "/mcp", http_client=httpx2.AsyncClient(headers=headers)
                )
                clients[label] = await stack.enter_async_context(Client(transport, mode="legacy"))
            for i in range(n + 50):
                for label, client in clients.items():
                    t0 = time.perf_counter()
                    res = await client.call_tool("orders_status_cached", {"order_id": "A-1001"})
                    if res.is_error:
                        raise SystemExit(f"MCP call failed: {res.content}")
                    if i >= 50:
                        lat[label].append((time.perf_counter() - t0) * 1000)
        return lat

    lat = anyio.run(measure)
    for server, _ in servers.values():
        server.close()
    gw.close()
    res = _summary(lat["peer_mcpserver"], lat["gateway"], n)
    return {
        k.replace("direct_", "peer_mcpserver_").replace("gateway_", "gateway_mcp_"): v
        for k, v in res.items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="Write the results here.")
    ap.add_argument(
        "--stable", type=int, default=100_000, help="Stable responses for false alarms."
    )
    ap.add_argument("--seeds", type=int, default=10, help="Trials per drift scenario.")
    ap.add_argument("--calls", type=int, default=20_000, help="In-process calls for overhead.")
    ap.add_argument("--mcp-calls", type=int, default=500, help="MCP calls for overhead.")
    add_lock_options(ap)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.upgrade()
        results: dict[str, Any] = {
            "benchmark": "gateway",
            "machine": {
                "python": platform.python_version(),
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            },
        }
        print("drift detection ...", file=sys.stderr)
        results["drift_detection"] = detection(store, a.seeds)
        print("false alarms ...", file=sys.stderr)
        results["false_alarms"] = false_alarms(store, a.stable)
        with measuring(a.lock) as measured:
            print("in-process overhead ...", file=sys.stderr)
            results["overhead_in_process"] = overhead_in_process(store, a.calls)
            print("MCP overhead ...", file=sys.stderr)
            results["overhead_mcp_http"] = overhead_mcp(store, a.mcp_calls)
        results["lock"] = measured
        store.dispose()
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    det = results["drift_detection"]
    results["targets"] = {
        "detection_within_20": all(
            v["detected"] == v["trials"] and (v["max_delay"] or 99) <= 20 for v in det.values()
        ),
        "zero_false_alarms": results["false_alarms"]["alerts"] == 0,
        "in_process_p99_overhead_below_1ms_wall": (
            results["overhead_in_process"]["wall_clock"]["overhead_p99_ms"] < 1.0
        ),
        "in_process_p99_overhead_below_1ms_cpu": (
            results["overhead_in_process"]["thread_cpu_time"]["overhead_p99_ms"] < 1.0
        ),
    }
    write_result(a.json, results)


if __name__ == "__main__":
    main()
