"""The "testing center" scale test: many agent runs at a fixed concurrency.

Reports throughput, latency percentiles (p50/p95/p99), error rate and cost
and tokens per run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from daytwo.evals.cases import Case
from daytwo.evals.runner import AgentResult, AgentRunner
from daytwo.exceptions import InputError

__all__ = ["load_test"]


def load_test(
    runner: AgentRunner,
    cases: Sequence[Case],
    *,
    concurrency: int,
    runs: int,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run ``runs`` cases (cycling through ``cases``) with ``concurrency`` workers."""
    if concurrency < 1 or runs < 1:
        raise InputError("--concurrency and --runs must be at least 1")
    if not cases:
        raise InputError("a load test needs at least one input case")
    latencies: list[float] = []
    results: list[AgentResult] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        started = time.perf_counter()
        try:
            res = runner.run(cases[i % len(cases)])
        except Exception as exc:
            res = AgentResult(output=None, error=f"{type(exc).__name__}: {exc}")
        took = (time.perf_counter() - started) * 1000
        with lock:
            latencies.append(took)
            results.append(res)
            done = len(results)
        if progress:
            progress(done, runs)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(runs)))
    seconds = time.perf_counter() - started
    lat = np.asarray(latencies, dtype=np.float64)
    errors = sum(1 for r in results if r.error)
    return {
        "agent": runner.name,
        "agent_version": runner.version,
        "runs": runs,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "throughput_rps": round(runs / seconds, 3) if seconds > 0 else None,
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
            "p99": round(float(np.percentile(lat, 99)), 2),
            "mean": round(float(lat.mean()), 2),
            "max": round(float(lat.max()), 2),
        },
        "error_rate": errors / runs,
        "errors": errors,
        "cost_per_run_usd": sum(r.cost_usd for r in results) / runs,
        "tokens_per_run": sum(r.input_tokens + r.output_tokens for r in results) / runs,
        "first_errors": sorted({r.error for r in results if r.error})[:5],
    }
