"""Durable runs in-process: DAG order, branch, map joins, retries, re-planning, budgets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from daytwo.exceptions import BackendError, NotFoundError, RateLimited
from daytwo.runtime import PythonTools, Runtime, SpecError, StaticTelemetry, ToolStats, load_spec


def _register(rt: Runtime, spec: dict[str, Any]) -> None:
    rt.registry.register(load_spec(spec))


def test_dag_runs_in_order_and_checkpoints_every_step(runtime: Runtime, tools: PythonTools) -> None:
    seen: list[tuple[str, str]] = []

    def echo(x: Any, idempotency_key: str) -> Any:
        seen.append((str(x), idempotency_key))
        return x

    tools.add("echo", echo)
    _register(
        runtime,
        {
            "name": "chain",
            "steps": [
                {"id": "b", "kind": "tool", "tool": "echo", "arguments": {"x": "{{ steps.a }}!"}},
                {"id": "a", "kind": "tool", "tool": "echo", "arguments": {"x": "{{ input.v }}"}},
            ],
            "output": "b",
        },
    )
    run = runtime.start("chain", {"v": "hi"})
    assert run["status"] == "succeeded"
    assert run["outputs"]["answer"] == "hi!"
    assert run["version"] == 1
    assert [x for x, _ in seen] == ["hi", "hi!"]
    # One idempotency key per (run, step), distinct between steps.
    assert len({k for _, k in seen}) == 2
    shown = runtime.show(run["id"])
    assert [c["name"] for c in shown["checkpoints"]] == ["step:a", "step:b"]


def test_branch_takes_one_side_and_map_joins(runtime: Runtime, tools: PythonTools) -> None:
    def maybe(n: int, idempotency_key: str) -> int:
        if n < 0:
            raise ValueError("negative")
        return n * 10

    tools.add("maybe", maybe)
    tools.add("echo", lambda x, idempotency_key: x)
    steps = [
        {"id": "gate", "kind": "branch", "when": "input.big", "then": ["big"], "else": ["small"]},
        {"id": "big", "kind": "tool", "tool": "echo", "arguments": {"x": "BIG"}},
        {"id": "small", "kind": "tool", "tool": "echo", "arguments": {"x": "small"}},
        {
            "id": "each",
            "kind": "map",
            "items": "input.ns",
            "tool": "maybe",
            "arguments": {"n": "{{ item }}"},
            "join": "keep-successes",
            "after": ["big", "small"],
            "retry": {"attempts": 1},
        },
        {
            "id": "strict",
            "kind": "map",
            "items": "input.ns",
            "tool": "maybe",
            "arguments": {"n": "{{ item }}"},
            "join": "quorum",
            "quorum": 2,
            "after": ["each"],
            "retry": {"attempts": 1},
        },
    ]
    _register(runtime, {"name": "br", "steps": steps, "output": "each"})
    run = runtime.start("br", {"big": False, "ns": [1, -1, 3]})
    assert run["status"] == "succeeded", run["error"]
    steps_out = run["outputs"]["steps"]
    assert steps_out["small"] == "small"
    assert "big" not in steps_out
    assert steps_out["each"] == [10, 30]
    assert steps_out["strict"] == [10, 30]
    assert any(d["kind"] == "branch" for d in run["decisions"])

    run2 = runtime.start("br", {"big": True, "ns": [-1, -2, 3]})
    assert run2["status"] == "failed"
    assert "quorum 2" in run2["error"]
    # Partial results are kept.
    assert run2["outputs"]["steps"]["big"] == "BIG"
    assert run2["outputs"]["steps"]["each"] == [30]


def test_retries_honour_retry_after_then_succeed(runtime: Runtime, tools: PythonTools) -> None:
    calls: list[float] = []

    def flaky(idempotency_key: str) -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RateLimited("slow down", retry_after=0.3)
        if len(calls) == 2:
            raise BackendError("502 from backend")
        return "ok"

    tools.add("flaky", flaky)
    _register(
        runtime,
        {
            "name": "retry",
            "retry": {
                "attempts": 3,
                "backoff_s": 0.01,
                "jitter_s": 0.0,
                "retry_on": ["TransportError", "BackendError"],
            },
            "steps": [{"id": "a", "kind": "tool", "tool": "flaky"}],
        },
    )
    run = runtime.start("retry", {})
    assert run["status"] == "succeeded"
    assert len(calls) == 3
    assert calls[1] - calls[0] >= 0.3  # Retry-After honoured
    assert calls[2] - calls[1] < 0.25  # plain backoff is short


def test_non_retryable_error_is_not_retried(runtime: Runtime, tools: PythonTools) -> None:
    calls: list[int] = []

    def bad(idempotency_key: str) -> str:
        calls.append(1)
        raise KeyError("no")

    tools.add("bad", bad)
    _register(runtime, {"name": "nr", "steps": [{"id": "a", "kind": "tool", "tool": "bad"}]})
    run = runtime.start("nr", {})
    assert run["status"] == "failed"
    assert len(calls) == 1
    assert "step 'a' failed after retries and re-planning" in run["error"]


def test_replan_to_alternative_tool_then_degraded_path(
    runtime: Runtime, tools: PythonTools, telemetry: StaticTelemetry
) -> None:
    def down(order_id: str, idempotency_key: str) -> dict[str, Any]:
        raise BackendError("backend down")

    tools.add("fast", down, capability="orders.status")
    tools.add(
        "live",
        lambda order_id, idempotency_key: {"id": order_id, "src": "live"},
        capability="orders.status",
    )
    tools.add("guess", lambda idempotency_key: {"src": "degraded"})
    telemetry.set("fast", ToolStats(p99_ms=5, calls=10))
    telemetry.set("live", ToolStats(p99_ms=50, calls=10))
    spec = {
        "name": "rp",
        "retry": {"attempts": 2, "backoff_s": 0.0, "jitter_s": 0.0},
        "steps": [
            {
                "id": "status",
                "kind": "tool",
                "capability": "orders.status",
                "arguments": {"order_id": "{{ input.id }}"},
                "fallback": "degraded",
            },
            {"id": "use", "kind": "tool", "tool": "guess", "after": ["status"]},
        ],
        "degraded": [{"id": "degraded", "kind": "tool", "tool": "guess"}],
    }
    _register(runtime, spec)
    run = runtime.start("rp", {"id": "A1"})
    assert run["status"] == "succeeded"
    assert run["outputs"]["steps"]["status"] == {"id": "A1", "src": "live"}
    replans = [d for d in run["decisions"] if d["kind"] == "replan"]
    assert replans[0]["data"]["strategy"] == "alternative_tool"
    assert "backend down" in replans[0]["data"]["reason"]

    # Both tools down: the degraded path runs and downstream steps still run.
    tools.functions["live"] = down
    run = runtime.start("rp", {"id": "A1"})
    assert run["status"] == "succeeded", run["error"]
    assert run["outputs"]["steps"]["status"] == {"src": "degraded"}
    strategies = [d["data"]["strategy"] for d in run["decisions"] if d["kind"] == "replan"]
    assert strategies == ["alternative_tool", "degraded_path"]
    assert run["outputs"]["steps"]["use"] == {"src": "degraded"}


def test_budget_exceeded_fails_the_run_and_keeps_partial_results(
    runtime: Runtime, tools: PythonTools
) -> None:
    tools.add("pricey", lambda idempotency_key: "done", cost_usd=0.02)
    steps = [{"id": f"s{i}", "kind": "tool", "tool": "pricey"} for i in range(5)]
    _register(runtime, {"name": "bud", "budgets": {"max_cost_usd": 0.05}, "steps": steps})
    run = runtime.start("bud", {})
    assert run["status"] == "failed"
    assert "cost budget exceeded" in run["error"]
    assert set(run["outputs"]["steps"]) == {"s0", "s1", "s2"}

    _register(runtime, {"name": "few", "budgets": {"max_steps": 2}, "steps": steps})
    run = runtime.start("few", {})
    assert run["status"] == "failed"
    assert "step budget exceeded" in run["error"]
    assert len(run["outputs"]["steps"]) == 2


def test_run_time_budget_counts_the_steps_own_time_not_waiting(
    runtime: Runtime, tools: PythonTools
) -> None:
    def slow(idempotency_key: str) -> str:
        time.sleep(0.25)
        return "done"

    tools.add("slow", slow)
    tools.add("quick", lambda idempotency_key: "done")
    steps = [{"id": f"s{i}", "kind": "tool", "tool": "slow"} for i in range(4)]
    _register(runtime, {"name": "sleepy", "budgets": {"max_wall_s": 0.6}, "steps": steps})
    run = runtime.start("sleepy", {})
    assert run["status"] == "failed"
    assert "run-time budget exceeded" in run["error"]
    assert set(run["outputs"]["steps"]) == {"s0", "s1", "s2"}  # 0.75 s of steps > 0.6 s

    # Two seconds waiting for an approval are not the run's own time.
    _register(
        runtime,
        {
            "name": "patient",
            "budgets": {"max_wall_s": 0.5},
            "steps": [
                {"id": "ok", "kind": "approval", "prompt": "go?"},
                {"id": "go", "kind": "tool", "tool": "quick", "after": ["ok"]},
            ],
        },
    )
    run = runtime.start("patient", {})
    assert run["status"] == "waiting"
    time.sleep(2.0)
    runtime.approve(run["id"], "ok", by="alice")
    assert runtime.wait(run["id"], timeout_s=30)["status"] == "succeeded"


def test_resume_of_a_failed_run_reruns_it_from_the_failed_step(
    runtime: Runtime, tools: PythonTools
) -> None:
    calls: list[str] = []
    broken = {"on": True}

    def first(idempotency_key: str) -> str:
        calls.append("first")
        return "one"

    def flaky(idempotency_key: str) -> str:
        calls.append("flaky")
        if broken["on"]:
            raise ValueError("backend down")
        return "two"

    tools.add("first", first)
    tools.add("flaky", flaky)
    spec = {
        "name": "retryable",
        "retry": {"attempts": 1},
        "steps": [
            {"id": "a", "kind": "tool", "tool": "first"},
            {"id": "b", "kind": "tool", "tool": "flaky", "after": ["a"]},
        ],
        "output": "b",
    }
    _register(runtime, spec)
    failed = runtime.start("retryable", {})
    assert failed["status"] == "failed"
    assert calls == ["first", "flaky"]
    broken["on"] = False
    again = runtime.resume(failed["id"], timeout_s=30)
    assert again["status"] == "succeeded", again["error"]
    assert again["forked_from"] == failed["id"]
    assert again["outputs"]["answer"] == "two"
    assert calls == ["first", "flaky", "flaky"]  # step a's result was reused
    assert runtime.show(failed["id"], steps=False)["status"] == "failed"  # history kept


def test_unknown_tool_or_capability_is_refused_before_the_run(
    runtime: Runtime, tools: PythonTools
) -> None:
    tools.add("echo", lambda x, idempotency_key: x)
    _register(runtime, {"name": "u1", "steps": [{"id": "a", "kind": "tool", "tool": "nope"}]})
    with pytest.raises(SpecError, match="unknown tool 'nope'"):
        runtime.start("u1", {})
    _register(runtime, {"name": "u2", "steps": [{"id": "a", "kind": "tool", "capability": "x.y"}]})
    with pytest.raises(SpecError, match=r"capability 'x\.y', which no tool offers"):
        runtime.start("u2", {})
    with pytest.raises(NotFoundError, match="no agent named 'ghost'"):
        runtime.start("ghost", {})
    assert runtime.list_runs() == []


def test_approval_pauses_and_resumes(runtime: Runtime, tools: PythonTools) -> None:
    refunds: list[str] = []
    tools.add("refund", lambda idempotency_key: refunds.append(idempotency_key) or "refunded")
    _register(
        runtime,
        {
            "name": "appr",
            "steps": [
                {"id": "ok", "kind": "approval", "prompt": "refund?"},
                {"id": "pay", "kind": "tool", "tool": "refund", "after": ["ok"]},
            ],
        },
    )
    run = runtime.start("appr", {})
    assert run["status"] == "waiting"
    assert refunds == []
    runtime.approve(run["id"], "ok", by="alice", note="fine")
    done = runtime.wait(run["id"], timeout_s=30)
    assert done["status"] == "succeeded"
    assert refunds
    assert done["outputs"]["steps"]["ok"]["by"] == "alice"

    run = runtime.start("appr", {})
    runtime.approve(run["id"], "ok", approved=False, by="bob", note="no")
    done = runtime.wait(run["id"], timeout_s=30)
    assert done["status"] == "failed"
    assert "rejected by bob" in done["error"]


def test_cancel_resume_and_fork(runtime: Runtime, tools: PythonTools) -> None:
    executed: list[str] = []
    keys: dict[str, set[str]] = {}

    def slow(x: str, idempotency_key: str) -> str:
        executed.append(x)
        keys.setdefault(x, set()).add(idempotency_key)
        time.sleep(0.15)
        return x

    tools.add("slow", slow)
    steps = [
        {"id": f"s{i}", "kind": "tool", "tool": "slow", "arguments": {"x": f"s{i}"}}
        for i in range(6)
    ]
    _register(runtime, {"name": "long", "steps": steps})
    run = runtime.start("long", {}, wait=False)
    time.sleep(0.4)
    runtime.cancel(run["id"])
    time.sleep(0.3)
    assert runtime.show(run["id"])["status"] == "cancelled"
    before = list(executed)
    assert 1 <= len(before) < 6
    resumed = runtime.resume(run["id"], timeout_s=30)
    assert resumed["status"] == "succeeded"
    # Checkpointed steps were not run again; only the step in flight at the
    # cancel may run twice, with the same idempotency key (exactly-once for tools
    # that honour it).
    assert sorted(set(executed)) == [f"s{i}" for i in range(6)]
    assert len(executed) <= 7
    assert all(len(k) == 1 for k in keys.values())

    executed.clear()
    fork = runtime.fork(run["id"], 4, timeout_s=30)
    assert fork["status"] == "succeeded"
    assert fork["forked_from"] == run["id"]
    assert executed == ["s3", "s4", "s5"]
    with pytest.raises(Exception, match="no step 'zz'"):
        runtime.fork(run["id"], "zz")
