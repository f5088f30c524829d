"""Runtime benchmark: durable per-step orchestration overhead vs LangGraph, crash recovery.

    python bench/runtime.py --json bench/results/runtime.json

1. **Per-step overhead**, no-op steps, durable on SQLite, measured in the same
   run for every contender (median and spread of >= 5 rounds of 20 runs after warm-up,
   holding the bench lock; load average per round):
   - ``daytwo`` — the real engine (spec → DBOS workflow → one checkpointed DBOS
     step per agent step → run record), DBOS system DB tuned (WAL,
     ``synchronous=NORMAL``).
   - ``dbos_raw_tuned`` / ``dbos_raw_default`` — a bare ``@DBOS.workflow`` calling a
     ``@DBOS.step`` ten times, on the tuned engine and on DBOS's default SQLite engine.
   - ``langgraph_sqlite`` — LangGraph ``StateGraph`` with ``SqliteSaver`` (the
     peer), and ``langgraph_memory`` without a checkpointer (the floor).
   These are interleaved (round r of each before round r+1 of any, order rotated) so the
   load of a shared machine drifts over all of them alike. ``daytwo_chain_sync_off``
   and ``dbos_raw_default_chain`` need their own DBOS launch and run afterwards.
   Graphs: a 10-step chain, and a 10-way fan-out (LangGraph: 10 parallel nodes in
   one superstep; daytwo: a ``map`` step, the ten items checkpointed as one
   batch, and 10 independent steps, one wave: each its own checkpoint row, the ten
   written in one transaction). ``daytwo_gateway_*`` run the
   chain and the map with every tool call through the real gateway (validation,
   idempotency ledger, telemetry, drift, spans): the path a server worker runs.
2. **Crash recovery** — a worker process is killed with SIGKILL in the middle
   of a 10-step run; a new worker process is started: seconds from its spawn to
   the run's completion (Python start, DBOS launch and recovery, replay of the
   checkpointed steps, the remaining steps), the part after the worker said
   it was ready, and the steps that ran again (only the one in flight).
3. **Takeover without a restart** — two workers; the one running the run is
   killed and stays dead: seconds from the kill until the other worker finished
   the run, at executor leases of 5 s and 30 s (the default).

Target: daytwo's overhead per step <= LangGraph's with its SQLite checkpointer.
"""

from __future__ import annotations

import argparse
import operator
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict

from dbos import DBOS

from _common import add_lock_options, interleave, machine, measuring, write_result
from _runtime_cases import N, daytwo_cases, gateway_cases, noop_gateway

RUNS = 20


@DBOS.step()
def _raw_noop(i: int) -> int:
    return i


@DBOS.workflow()
def _raw_chain(n: int) -> int:
    for i in range(n):
        _raw_noop(i)
    return n


def _round(fn: Callable[[int], Any], steps: int) -> Callable[[], float]:
    """One round of ``fn``: RUNS runs, as ms per step (thread ids never repeat)."""
    counter = iter(range(1_000_000))

    def one() -> float:
        t = time.perf_counter()
        for _ in range(RUNS):
            fn(next(counter))
        return (time.perf_counter() - t) / (RUNS * steps) * 1000

    return one


def _interleaved(
    contenders: dict[str, Callable[[int], Any]], steps: int, rounds: int
) -> dict[str, Any]:
    """Round r of every contender runs before round r+1 of any: load drifts hit all alike."""
    return interleave({name: _round(fn, steps) for name, fn in contenders.items()}, rounds)


class _Routed:
    """Tool calls by name: ``gw_*`` through the gateway, the rest in process."""

    def __init__(self, local: Any, gateway: Any) -> None:
        self.local, self.gateway = local, gateway

    def tools(self, capability: str | None = None) -> list[str]:
        return [*self.local.tools(capability), *self.gateway.tools(capability)]

    def call(self, tool: str, arguments: dict[str, Any], **kw: Any) -> Any:
        target = self.gateway if tool.startswith("gw_") else self.local
        return target.call(tool, arguments, **kw)


def bench_daytwo(
    tmp: Path, peers: dict[str, Callable[[int], Any]], rounds: int, lock: Path | None
) -> dict[str, Any]:
    from daytwo.runtime import PythonTools, Runtime, Services, load_spec
    from daytwo.runtime.adapters import GatewayTools
    from daytwo.store import Store

    store = Store(f"sqlite:///{tmp / 'daytwo.db'}")
    store.upgrade()
    tools = PythonTools()
    tools.add("noop", lambda idempotency_key, i=0: i)
    cases = daytwo_cases()
    chain, fan_map, fan_steps = (cases[c][0] for c in ("chain", "fanout_map", "fanout_steps"))
    # The path a server worker really runs: tool steps through the gateway (schema
    # validation, idempotency ledger, telemetry, drift checks, spans), chained and mapped.
    gateway = noop_gateway(store)
    gw = gateway_cases()
    gw_chain, gw_map = gw["gateway_chain"][0], gw["gateway_fanout_map"][0]
    out: dict[str, Any] = {}
    rt = Runtime(store, Services(tools=_Routed(tools, GatewayTools(gateway))), data_dir=tmp)
    rt.launch()
    try:
        for spec in (chain, fan_map, fan_steps, gw_chain, gw_map):
            rt.registry.register(load_spec(spec))

        def run(agent: str, inputs: dict[str, Any]) -> Callable[[int], Any]:
            def go(_: int) -> Any:
                res = rt.start(agent, inputs)
                assert res["status"] == "succeeded", res["error"]

            return go

        contenders = {
            **peers,
            "daytwo_chain": run("chain", {}),
            "daytwo_fanout_map": run("fanmap", {"items": list(range(N))}),
            "daytwo_fanout_steps": run("fansteps", {}),
            "daytwo_gateway_chain": run("gwchain", {}),
            "daytwo_gateway_fanout_map": run("gwmap", {"items": list(range(N))}),
            "dbos_raw_tuned_chain": lambda _: _raw_chain(N),
        }
        with measuring(lock) as measured:
            out["interleaved"] = _interleaved(contenders, N, rounds)
        out["interleaved"]["lock"] = measured
    finally:
        rt.shutdown()
    # Same engine with synchronous=OFF (still survives kill -9, not a power loss).
    off_dir = tmp / "sync_off"
    off_dir.mkdir()
    rt = Runtime(store, Services(tools=tools), data_dir=off_dir, sqlite_synchronous="OFF")
    rt.launch()
    try:
        with measuring(lock):
            out["daytwo_chain_sync_off"] = interleave({"c": _round(run("chain", {}), N)}, rounds)[
                "contenders"
            ]["c"]
    finally:
        rt.shutdown()
        store.dispose()
    # DBOS defaults (its own SQLite engine: rollback journal, full sync) for reference.
    DBOS(
        config={
            "name": "rawdefault",
            "system_database_url": f"sqlite:///{tmp / 'raw.sqlite'}",
            "log_level": "WARNING",
        }
    )
    DBOS.launch()
    try:
        with measuring(lock):
            out["dbos_raw_default_chain"] = interleave(
                {"c": _round(lambda _: _raw_chain(N), N)}, rounds
            )["contenders"]["c"]
    finally:
        DBOS.destroy(destroy_registry=False)
    return out


class _S(TypedDict):
    x: int


class _Fan(TypedDict):
    x: Annotated[list[int], operator.add]


def langgraph_contenders(tmp: Path) -> dict[str, Callable[[int], Any]]:
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.graph import END, START, StateGraph

    def chain_graph() -> Any:
        g = StateGraph(_S)
        prev = START
        for i in range(N):
            g.add_node(f"n{i}", lambda s: {"x": s["x"] + 1})
            g.add_edge(prev, f"n{i}")
            prev = f"n{i}"
        g.add_edge(prev, END)
        return g

    def fan_graph() -> Any:
        g = StateGraph(_Fan)
        for i in range(N):
            g.add_node(f"b{i}", lambda s, i=i: {"x": [i]})
            g.add_edge(START, f"b{i}")
            g.add_edge(f"b{i}", END)
        return g

    conn = sqlite3.connect(str(tmp / "langgraph.sqlite"), check_same_thread=False)
    saver = SqliteSaver(conn)
    chain = chain_graph().compile(checkpointer=saver)
    fan = fan_graph().compile(checkpointer=saver)
    memory = chain_graph().compile()
    return {
        "langgraph_sqlite_chain": lambda k: chain.invoke(
            {"x": 0}, {"configurable": {"thread_id": f"c{k}"}}
        ),
        "langgraph_sqlite_fanout": lambda k: fan.invoke(
            {"x": []}, {"configurable": {"thread_id": f"f{k}"}}
        ),
        "langgraph_memory_chain": lambda k: memory.invoke({"x": 0}),
    }


_SLOW_TOOL = """
import os, time
from daytwo.runtime import PythonTools, Services
def _step(i, idempotency_key):
    with open(os.environ["RT_BENCH_LOG"], "a") as f:
        f.write(f"{i}\\n")
    with open(os.environ["RT_BENCH_LOG"] + ".pids", "a") as f:
        f.write(f"{i} {os.getpid()}\\n")
    if i == 5 and not os.path.exists(os.environ["RT_BENCH_LOG"] + ".killed"):
        time.sleep(60)
    return i
def services(settings, store):
    tools = PythonTools()
    tools.add("step", _step)
    return Services(tools=tools)
"""


def _slow_run_setup(
    data: Path, **env_extra: str
) -> tuple[Any, Any, Path, dict[str, str], list[str]]:
    """A store with the 10-step ``rec`` agent whose step 5 hangs until killed, the
    worker command and its environment: (store, runtime client, step log, env, cmd)."""
    from daytwo.runtime import Runtime, Services, load_spec
    from daytwo.store import Store

    data.mkdir()
    (data / "rt_bench_services.py").write_text(_SLOW_TOOL)
    log = data / "steps.log"
    store = Store(f"sqlite:///{data / 'daytwo.db'}")
    store.upgrade()
    rt = Runtime(store, Services(), data_dir=data)
    steps = [
        {
            "id": f"s{i}",
            "kind": "tool",
            "tool": "step",
            "arguments": {"i": i},
            **({"after": [f"s{i - 1}"]} if i else {}),
        }
        for i in range(N)
    ]
    rt.registry.register(load_spec({"name": "rec", "steps": steps}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAYTWO_")}
    env.update({"DAYTWO_DATA_DIR": str(data), "RT_BENCH_LOG": str(log), "PYTHONPATH": str(data)})
    env.update(env_extra)
    cmd = [
        sys.executable,
        "-m",
        "daytwo",
        "runs",
        "worker",
        "--services",
        "rt_bench_services:services",
    ]
    return store, rt, log, env, cmd


def bench_recovery(tmp: Path) -> dict[str, Any]:
    store, rt, log, env, cmd = _slow_run_setup(tmp / "recovery")
    run_id = rt.enqueue("rec", {})
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and "5\n" in log.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    Path(str(log) + ".killed").write_text("")
    before = log.read_text().split()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "worker ... ready": DBOS launched (recovery already started)
        ready_s = time.perf_counter() - started
        while time.perf_counter() - started < 120:
            if rt.show(run_id, steps=False)["status"] == "succeeded":
                break
            time.sleep(0.02)
        recovery_s = time.perf_counter() - started
    finally:
        proc.terminate()
        proc.wait()
    after = log.read_text().split()[len(before) :]
    status = rt.show(run_id, steps=False)["status"]
    rt.close()
    store.dispose()
    return {
        "status": status,
        "steps_before_kill": before,
        "steps_after_restart": after,
        "steps_run_twice": sorted(set(before) & set(after)),
        "recovery_s_from_spawn": round(recovery_s, 3),
        "worker_ready_s_from_spawn": round(ready_s, 3),
        "run_done_s_after_worker_ready": round(max(0.0, recovery_s - ready_s), 3),
    }


def bench_takeover(tmp: Path, lease_s: float) -> dict[str, Any]:
    """Two workers; the one running a run is killed and NOT restarted: the other takes over.

    Seconds from the kill to the run's completion, with ``DAYTWO_EXECUTOR_LEASE_S`` =
    ``lease_s`` (a dead process on the same host voids its lease at once; the survivor
    notices at its next sweep, every 0.4-0.6 lease).
    """
    store, rt, log, env, cmd = _slow_run_setup(
        tmp / f"takeover-{lease_s:g}", DAYTWO_EXECUTOR_LEASE_S=str(lease_s)
    )
    workers = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        for proc in workers:
            assert proc.stdout is not None
            proc.stdout.readline()  # ready
        run_id = rt.enqueue("rec", {})
        pids = Path(str(log) + ".pids")
        owner = 0
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not owner:
            if pids.exists():
                owner = next(
                    (
                        int(p)
                        for i, p in (ln.split() for ln in pids.read_text().splitlines())
                        if i == "5"
                    ),
                    0,
                )
            time.sleep(0.02)
        victim = next(p for p in workers if p.pid == owner)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        Path(str(log) + ".killed").write_text("")
        killed = time.perf_counter()
        while time.perf_counter() - killed < 180:
            if rt.show(run_id, steps=False)["status"] == "succeeded":
                break
            time.sleep(0.02)
        took_s = time.perf_counter() - killed
        status = rt.show(run_id, steps=False)["status"]
    finally:
        for proc in workers:
            proc.kill()
            proc.wait()
        rt.close()
        store.dispose()
    return {"lease_s": lease_s, "status": status, "done_s_after_kill": round(took_s, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="Write the results here.")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (>= 5)")
    ap.add_argument("--skip-recovery", action="store_true", help="only the per-step overhead")
    add_lock_options(ap)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = bench_daytwo(tmp, langgraph_contenders(tmp), args.rounds, args.lock)
        if not args.skip_recovery:
            results["crash_recovery"] = bench_recovery(tmp)
            results["takeover_without_restart"] = [
                bench_takeover(tmp, lease) for lease in (5.0, 30.0)
            ]
    per = results["interleaved"]["contenders"]

    def med(name: str) -> float:
        return float(per[name]["median"])

    lg_chain, lg_fan = med("langgraph_sqlite_chain"), med("langgraph_sqlite_fanout")
    report = {
        "benchmark": "runtime",
        "unit": "ms per step (median over rounds of 20 runs)",
        "machine": machine(),
        "runs_per_round": RUNS,
        "rounds": args.rounds,
        "steps_per_run": N,
        "results": results,
        "ratios_vs_langgraph_sqlite": {
            "chain": round(med("daytwo_chain") / lg_chain, 3),
            "fanout_map": round(med("daytwo_fanout_map") / lg_fan, 3),
            "fanout_steps": round(med("daytwo_fanout_steps") / lg_fan, 3),
            "gateway_chain": round(med("daytwo_gateway_chain") / lg_chain, 3),
            "gateway_fanout_map": round(med("daytwo_gateway_fanout_map") / lg_fan, 3),
        },
        "target": "daytwo ms_per_step <= 0.5 x langgraph_sqlite, and <= 1 ms on the chain",
        "target_met": {
            "chain": med("daytwo_chain") <= 0.5 * lg_chain,
            "chain_le_1ms": med("daytwo_chain") <= 1.0,
            "fanout_map": med("daytwo_fanout_map") <= 0.5 * lg_fan,
            "fanout_steps": med("daytwo_fanout_steps") <= 0.5 * lg_fan,
        },
    }
    write_result(args.json, report)


if __name__ == "__main__":
    main()
