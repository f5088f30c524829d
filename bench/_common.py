"""Helpers shared by the benchmark scripts: the bench lock, interleaved rounds, results.

Every benchmark that times contenders runs them through :func:`interleave`: round ``r``
of every contender (in an order rotated per round) before round ``r + 1`` of any, so a
load that drifts on a shared machine hits all of them alike; at least
:data:`MIN_ROUNDS` rounds; reported as median and spread (min, max, and the spread as a
share of the median) with the load average of each round. The measurements hold the
bench lock (``fcntl.flock`` on :data:`DEFAULT_LOCK` unless ``--lock`` names another
file, ``--no-lock`` to skip), so two benchmarks never time each other.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_LOCK",
    "MIN_ROUNDS",
    "add_lock_options",
    "daytwo_cli",
    "high_priority",
    "interleave",
    "load_avg",
    "machine",
    "measuring",
    "run_locked",
    "summary",
    "write_result",
]

DEFAULT_LOCK = Path("/tmp/daytwo-bench.lock")
MIN_ROUNDS = 5


_AUTOGROUP = Path("/proc/self/autogroup")


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def _renice(tid: int, priority: int) -> None:
    with contextlib.suppress(PermissionError, ProcessLookupError):
        os.setpriority(os.PRIO_PROCESS, tid, priority)


@contextlib.contextmanager
def high_priority(priority: int = -15) -> Iterator[None]:
    """Run at nice ``priority``, and the same for this process's scheduler autogroup.

    With ``kernel.sched_autogroup_enabled`` the CPU is shared fairly between sessions
    first and nice only orders processes inside one session, so ``nice -n -15`` alone
    leaves a benchmark a 1/sessions share of a busy machine.
    """
    with contextlib.ExitStack() as stack:
        # Linux nice is per thread: renice every thread that exists now (onnxruntime's
        # intra-op pools are made with their sessions, before measuring), not only the
        # calling one, or contenders that compute on those threads run at a lower priority
        # than contenders that compute on threads started while measuring.
        for tid in _threads():
            with contextlib.suppress(PermissionError, ProcessLookupError):
                before = os.getpriority(os.PRIO_PROCESS, tid)
                os.setpriority(os.PRIO_PROCESS, tid, priority)
                stack.callback(_renice, tid, before)
        with contextlib.suppress(OSError, ValueError, IndexError):
            group = _AUTOGROUP.read_text(encoding="utf-8").split()[-1]
            _AUTOGROUP.write_text(str(priority), encoding="utf-8")
            stack.callback(_AUTOGROUP.write_text, group, encoding="utf-8")
        yield


@contextlib.contextmanager
def measuring(lock: Path | None, priority: int = -15) -> Iterator[dict[str, Any]]:
    """Hold ``lock`` (``fcntl.flock``) at raised priority while measuring.

    Yields a dict that gets ``lock_wait_s`` and the load averages at the start and end,
    so results say how quiet the machine was. Without a lock it only records the loads.
    """
    info: dict[str, Any] = {"lock": str(lock) if lock else None}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if lock is not None:
            fh = stack.enter_context(lock.open("a"))
            fcntl.flock(fh, fcntl.LOCK_EX)
            stack.callback(fcntl.flock, fh, fcntl.LOCK_UN)
            stack.enter_context(high_priority(priority))
        info["lock_wait_s"] = round(time.perf_counter() - started, 1)
        info["load_avg_start"] = [round(x, 2) for x in os.getloadavg()]
        yield info
        info["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]


def beir_rows(dataset: Path, name: str, limit: int | None = None) -> list[dict[str, Any]]:
    """The JSON objects of ``name`` (``corpus.jsonl`` or ``queries.jsonl``) in a
    BEIR-layout set, the first ``limit`` of them when given."""
    rows: list[dict[str, Any]] = []
    with (dataset / name).open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(rows) >= limit:
                break
            if line.strip():
                rows.append(json.loads(line))
    return rows


def load_avg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "load_avg": load_avg()}


def summary(values: list[float], digits: int = 3) -> dict[str, Any]:
    """Median and spread of one contender's per-round values."""
    med = statistics.median(values)
    low, high = min(values), max(values)
    return {
        "median": round(med, digits),
        "min": round(low, digits),
        "max": round(high, digits),
        "spread_pct": round((high - low) / med * 100.0, 1) if med else None,
        "rounds": [round(v, digits) for v in values],
    }


def interleave(
    contenders: Mapping[str, Callable[[], float]],
    rounds: int = MIN_ROUNDS,
    *,
    warmup: bool = True,
    on_round: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Run each contender once per round, rotating the order per round; summarise.

    A contender returns the figure of one round (e.g. ms per step). Returns
    ``{"contenders": {name: summary}, "rounds": [{"order", "load_avg", name: value}]}``.
    """
    if rounds < MIN_ROUNDS:
        raise ValueError(f"at least {MIN_ROUNDS} rounds decide anything here, not {rounds}")
    names = list(contenders)
    if warmup:
        for name in names:
            contenders[name]()
    values: dict[str, list[float]] = {name: [] for name in names}
    per_round: list[dict[str, Any]] = []
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        row: dict[str, Any] = {"order": order, "load_avg": load_avg()}
        for name in order:
            value = contenders[name]()
            values[name].append(value)
            row[name] = round(value, 4)
        per_round.append(row)
        if on_round is not None:
            on_round(r, {name: row[name] for name in names})
    return {"contenders": {n: summary(v) for n, v in values.items()}, "rounds": per_round}


def add_lock_options(parser: argparse.ArgumentParser) -> None:
    """``--lock FILE`` (default :data:`DEFAULT_LOCK`), ``--no-lock``, ``--lock-scope``."""
    parser.add_argument(
        "--lock",
        type=Path,
        default=DEFAULT_LOCK,
        help=f"flock this file while measuring (default {DEFAULT_LOCK})",
    )
    parser.add_argument(
        "--no-lock", dest="lock", action="store_const", const=None, help="measure without the lock"
    )
    parser.add_argument(
        "--lock-scope",
        choices=("measure", "all"),
        default="measure",
        help="hold the lock (and high priority) only while measuring, or for the whole run",
    )


def run_locked(
    args: argparse.Namespace, run: Callable[[argparse.Namespace, Path | None], dict[str, Any]]
) -> dict[str, Any]:
    """``run(args, lock)`` with the lock for each measurement, or around all of it."""
    if args.lock is not None and args.lock_scope == "all":
        with measuring(args.lock) as measured:
            result = run(args, None)
        result["lock_scope"] = {"scope": "all", **measured}
    else:
        result = run(args, args.lock)
        result["lock_scope"] = {"scope": "measure", "lock": str(args.lock) if args.lock else None}
    return result


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    """Write ``result`` as indented JSON to ``path`` (if given) and print it."""
    text = json.dumps(result, indent=2)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    print(text)


def daytwo_cli(args: list[str], env: Mapping[str, str]) -> tuple[int, Any, float]:
    """Run this venv's ``daytwo`` with ``args``: (exit code, its JSON output, wall seconds).

    Output that is not JSON comes back as ``{"stdout", "stderr"}`` (their last 2,000
    characters), so a failed step is recorded rather than lost.
    """
    daytwo = Path(sys.executable).with_name("daytwo")
    started = time.perf_counter()
    proc = subprocess.run(
        [str(daytwo), *args], capture_output=True, text=True, env=dict(env), check=False
    )
    wall = time.perf_counter() - started
    try:
        body = json.loads(proc.stdout)
    except json.JSONDecodeError:
        body = {"stdout": proc.stdout[-2000:], "stderr": proc.stderr[-2000:]}
    return proc.returncode, body, wall
