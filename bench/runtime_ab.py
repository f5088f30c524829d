"""Runtime A/B: the bench's daytwo cases on two source trees, interleaved in one run.

    python bench/runtime_ab.py --tree main=/tmp/main/src --tree branch=src \
        --json /tmp/runtime_ab.json

Each contender is one (tree, case) pair; a round runs every contender once, in an order
rotated per round (``_common.interleave``), each in a fresh process whose ``PYTHONPATH``
is its tree, so both versions of daytwo are timed in the same run under the same load.
A contender's figure for a round is ms per step, the best of ``--batches`` batches of 20
runs after 5 warm-up runs (the best batch is the one a load spike hit least). The cases
are ``bench/runtime.py``'s: the 10-step chain, the 10-item map and the 10 independent
steps, no-op tools, durable on SQLite. Process start-up is not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import add_lock_options, interleave, machine, measuring, write_result
from _runtime_cases import N, daytwo_cases, gateway_cases, noop_gateway

RUNS = 20
CASES = ("chain", "fanout_map", "fanout_steps", "gateway_chain", "gateway_fanout_map")


def one(case: str, batches: int) -> float:
    """ms per step of ``case`` on the daytwo this process imports (best batch)."""
    from daytwo.runtime import PythonTools, Runtime, Services, load_spec
    from daytwo.runtime.adapters import GatewayTools
    from daytwo.store import Store

    spec, inputs = {**daytwo_cases(), **gateway_cases()}[case]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = Store(f"sqlite:///{tmp / 'daytwo.db'}")
        store.upgrade()
        tools: Any = PythonTools()
        tools.add("noop", lambda idempotency_key, i=0: i)
        if case.startswith("gateway_"):
            tools = GatewayTools(noop_gateway(store))
        rt = Runtime(store, Services(tools=tools), data_dir=tmp)
        rt.launch()
        try:
            rt.registry.register(load_spec(spec))
            for _ in range(5):
                rt.start(spec["name"], inputs)
            best = float("inf")
            for _ in range(batches):
                started = time.perf_counter()
                for _ in range(RUNS):
                    assert rt.start(spec["name"], inputs)["status"] == "succeeded"
                best = min(best, (time.perf_counter() - started) / (RUNS * N) * 1000)
        finally:
            rt.shutdown()
            store.dispose()
    return best


def _contender(tree: Path, case: str, batches: int) -> Callable[[], float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, __file__, "--one", case, "--batches", str(batches)]

    def run() -> float:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        return float(json.loads(done.stdout.strip().splitlines()[-1]))

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tree", action="append", default=[], help="NAME=PATH of a src tree")
    ap.add_argument("--rounds", type=int, default=6, help="interleaved rounds (>= 5)")
    ap.add_argument("--batches", type=int, default=5, help="batches of 20 runs per figure")
    ap.add_argument("--case", action="append", choices=CASES, help="only these (default all)")
    ap.add_argument("--one", choices=CASES, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="Write the results here.")
    add_lock_options(ap)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.batches)))
        return
    trees = dict(t.split("=", 1) for t in args.tree)
    if len(trees) < 2:
        ap.error("give two trees or more: --tree NAME=PATH")
    cases = tuple(args.case or CASES)
    contenders = {
        f"{name}:{case}": _contender(Path(path).resolve(), case, args.batches)
        for name, path in trees.items()
        for case in cases
    }
    with measuring(args.lock) as measured:
        result = interleave(contenders, args.rounds, warmup=False)
    per = result["contenders"]
    first = next(iter(trees))
    write_result(
        args.json,
        {
            "benchmark": "runtime_ab",
            "unit": f"ms per step, best of {args.batches} batches of {RUNS} runs, median of rounds",
            "machine": machine(),
            "trees": trees,
            "results": result,
            "lock": measured,
            "change_vs_" + first: {
                f"{name}:{case}": round(
                    per[f"{name}:{case}"]["median"] / per[f"{first}:{case}"]["median"] - 1, 3
                )
                for name in trees
                if name != first
                for case in cases
            },
        },
    )


if __name__ == "__main__":
    main()
