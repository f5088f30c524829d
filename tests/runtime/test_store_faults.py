"""A store lock during a tool call is an infrastructure fault, not the tool's failure.

It is retried, never counted against the tool's error rate (the circuit breaker reads
that), and never makes the runtime re-plan to another, costlier tool. The lock here is
real: another connection holds SQLite's write lock while the tool writes.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

import daytwo.gateway.samples as samples
from daytwo.exceptions import DatabaseLocked
from daytwo.gateway import Gateway
from daytwo.runtime import Runtime, Services, load_spec
from daytwo.runtime.adapters import GatewayTelemetry, GatewayTools
from daytwo.store import Store

SPEC = {
    "name": "orders",
    "slo": {"latency_ms": 5000},
    "retry": {"attempts": 2, "backoff_s": 0.01, "jitter_s": 0.0},
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
CACHED = "daytwo.gateway.samples:orders_status_cached"
LIVE = "daytwo.gateway.samples:orders_status_live"


class LockedCache:
    """The cache tool, writing its hit count to the store; its first ``locked`` calls
    meet another writer holding the SQLite write lock."""

    def __init__(self, url: str, db_path: Path, locked: int) -> None:
        self.store = Store(url, busy_timeout_ms=50)  # the tool's own connection
        self.db_path = db_path
        self.locked = locked
        self.calls = 0

    def __call__(self, order_id: str) -> dict[str, Any]:
        self.calls += 1
        holder = None
        if self.calls <= self.locked:
            holder = sqlite3.connect(self.db_path, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")
        try:
            with self.store.session(write=True) as s:
                s.execute(text("SELECT 1"))
        finally:
            if holder is not None:
                holder.execute("ROLLBACK")
                holder.close()
        return samples.orders_status_cached(order_id)


@pytest.fixture
def gw(sqlite_store: Store, tmp_path: Path) -> Iterator[tuple[Runtime, Gateway, list[str]]]:
    gateway = Gateway(sqlite_store, telemetry_window_s=60.0)
    samples.register_samples(gateway)
    gateway.create_agent("orders", ["orders_status_cached", "orders_status_live"])
    live_calls: list[str] = []

    def live(order_id: str) -> dict[str, Any]:
        live_calls.append(order_id)
        return {"order_id": order_id, "status": "shipped", "source": "live"}

    gateway.register_python(LIVE, live)
    services = Services(tools=GatewayTools(gateway), telemetry=GatewayTelemetry(gateway))
    rt = Runtime(sqlite_store, services, data_dir=tmp_path / "rt")
    rt.launch()
    rt.registry.register(load_spec(SPEC))
    try:
        yield rt, gateway, live_calls
    finally:
        rt.shutdown()
        gateway.close()


def _cache(gateway: Gateway, sqlite_url: str, tmp_path: Path, locked: int) -> LockedCache:
    cache = LockedCache(sqlite_url, tmp_path / "daytwo.db", locked)
    gateway.register_python(CACHED, cache)
    return cache


def test_a_transient_lock_is_retried_and_not_held_against_the_tool(
    gw: tuple[Runtime, Gateway, list[str]], sqlite_url: str, tmp_path: Path
) -> None:
    rt, gateway, live_calls = gw
    cache = _cache(gateway, sqlite_url, tmp_path, locked=2)
    # The step's own policy allows 2 tries; a store fault gets more.
    run = rt.start("orders", {"order_id": "A-1001"})
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["steps"]["order"]["source"] == "cache"
    assert cache.calls == 3
    assert live_calls == []
    assert not [d for d in run["decisions"] if d["kind"] == "replan"]
    stats = gateway.telemetry.snapshot("orders_status_cached")
    assert stats.calls == 1
    assert stats.error_rate == 0.0

    # The next run still prefers the cache: its health is intact.
    run = rt.start("orders", {"order_id": "A-1002"})
    choice = next(d for d in run["decisions"] if d["kind"] == "tool_choice")
    assert choice["data"]["chosen"] == "orders_status_cached"


def test_a_lasting_lock_fails_the_run_without_moving_to_the_costlier_tool(
    gw: tuple[Runtime, Gateway, list[str]], sqlite_url: str, tmp_path: Path
) -> None:
    rt, gateway, live_calls = gw
    cache = _cache(gateway, sqlite_url, tmp_path, locked=1000)
    with pytest.raises(DatabaseLocked):  # the gateway passes the fault on as itself
        gateway.call("orders_status_cached", {"order_id": "A-1001"}, agent="orders")
    run = rt.start("orders", {"order_id": "A-1001"})
    assert run["status"] == "failed"
    assert "the store was unavailable" in run["error"]
    assert cache.calls == 1 + 4
    assert live_calls == []
    replan = next(d for d in run["decisions"] if d["kind"] == "replan")
    assert replan["data"]["strategy"] == "none"
    assert replan["data"]["infrastructure_fault"] == "DatabaseLocked"
    assert "infrastructure fault" in replan["summary"]
    stats = gateway.telemetry.snapshot("orders_status_cached")
    assert stats.calls == 0
    assert stats.error_rate == 0.0


def test_the_choice_says_why_the_preferred_tool_was_passed_over(
    gw: tuple[Runtime, Gateway, list[str]],
) -> None:
    rt, gateway, _live_calls = gw
    for _ in range(10):
        gateway.telemetry.record("orders_status_cached", "1.0.0", latency_ms=1.0, ok=False)
    run = rt.start("orders", {"order_id": "A-1001"})
    assert run["status"] == "succeeded", run["error"]
    choice = next(d for d in run["decisions"] if d["kind"] == "tool_choice")
    assert choice["data"]["chosen"] == "orders_status_live"
    assert "passed over orders_status_cached (circuit open (error rate 1.00" in choice["summary"]
