"""The runtime bound to the real gateway: live telemetry drives the tool choice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import daytwo.gateway.samples as samples
from daytwo.gateway import Gateway
from daytwo.runtime import Runtime, Services, load_spec
from daytwo.runtime.adapters import GatewayTelemetry, GatewayTools
from daytwo.store import Store

SPEC = {
    "name": "orders",
    "slo": {"latency_ms": 500},
    "steps": [
        {
            "id": "order",
            "kind": "tool",
            "capability": "orders.status",
            "prefer": ["orders_status_cached", "orders_status_live"],
            "arguments": {"order_id": "{{ input.order_id }}"},
        }
    ],
}


@pytest.fixture
def gw_runtime(
    sqlite_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Runtime, Gateway]]:
    monkeypatch.setattr(samples, "_live_delay", (0.005, 0.01))  # keep the live tool quick
    gateway = Gateway(sqlite_store, telemetry_window_s=1.0)
    samples.register_samples(gateway)
    gateway.create_agent("orders", ["orders_status_cached", "orders_status_live"])
    services = Services(tools=GatewayTools(gateway), telemetry=GatewayTelemetry(gateway))
    rt = Runtime(sqlite_store, services, data_dir=tmp_path)
    rt.launch()
    rt.registry.register(load_spec(SPEC))
    try:
        yield rt, gateway
    finally:
        rt.shutdown()
        gateway.close()


def _choice(rt: Runtime) -> tuple[str, dict[str, Any]]:
    run = rt.start("orders", {"order_id": "A-1001"})
    assert run["status"] == "succeeded", run["error"]
    decision = next(d for d in run["decisions"] if d["kind"] == "tool_choice")
    return run["outputs"]["steps"]["order"]["source"], decision


def test_live_gateway_telemetry_switches_tools_and_back(
    gw_runtime: tuple[Runtime, Gateway],
) -> None:
    rt, gateway = gw_runtime
    source, decision = _choice(rt)
    assert source == "cache"
    assert decision["data"]["chosen"] == "orders_status_cached"
    # The cache degrades: its live p99 goes past the 500 ms SLO.
    for _ in range(20):
        gateway.telemetry.record("orders_status_cached", "1.0.0", latency_ms=2500.0, ok=True)
    source, decision = _choice(rt)
    assert decision["data"]["chosen"] == "orders_status_live"
    assert source != "cache"
    cached = next(c for c in decision["data"]["candidates"] if c["tool"] == "orders_status_cached")
    assert cached["p99_ms"] >= 2500
    # Recovery: the slow samples leave the window, fresh calls are fast again.
    time.sleep(1.1)
    source, decision = _choice(rt)
    assert decision["data"]["chosen"] == "orders_status_cached"


def test_gateway_replays_a_tool_call_with_the_same_key(
    gw_runtime: tuple[Runtime, Gateway],
) -> None:
    rt, _ = gw_runtime
    tools = rt.services.tools
    assert tools is not None
    first = tools.call(
        "orders_status_cached", {"order_id": "A-1002"}, agent="orders", idempotency_key="k-1"
    )
    again = tools.call(
        "orders_status_cached", {"order_id": "A-1002"}, agent="orders", idempotency_key="k-1"
    )
    assert first.output == again.output
    # The gateway's facts survive the seam: the second answer is the stored one.
    assert (first.replayed, again.replayed) == (False, True)
    assert again.flags == ()
    assert again.alerts == ()
    assert sorted(tools.tools("orders.status")) == ["orders_status_cached", "orders_status_live"]


def test_runs_are_audited_in_the_hash_chained_log(
    gw_runtime: tuple[Runtime, Gateway], sqlite_store: Store
) -> None:
    from daytwo.runtime.adapters import TracingAudit
    from daytwo.tracing.audit import AuditLog

    rt, _ = gw_runtime
    rt.services.audit = TracingAudit(sqlite_store)
    run = rt.start("orders", {"order_id": "A-1003"})
    assert run["status"] == "succeeded"
    log = AuditLog(sqlite_store)
    kinds = [r.kind for r in log.records(run_id=run["id"])]
    assert kinds == ["run.start", "run.step", "run.end"]
    assert log.verify().ok
