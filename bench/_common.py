"""Helpers shared by the benchmark scripts: the bench lock around measurements, results."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["add_lock_options", "high_priority", "measuring", "run_locked", "write_result"]


_AUTOGROUP = Path("/proc/self/autogroup")


@contextlib.contextmanager
def high_priority(priority: int = -15) -> Iterator[None]:
    """Run at nice ``priority``, and the same for this process's scheduler autogroup.

    With ``kernel.sched_autogroup_enabled`` the CPU is shared fairly between sessions
    first and nice only orders processes inside one session, so ``nice -n -15`` alone
    leaves a benchmark a 1/sessions share of a busy machine.
    """
    with contextlib.ExitStack() as stack:
        before = os.getpriority(os.PRIO_PROCESS, 0)
        with contextlib.suppress(PermissionError):
            os.setpriority(os.PRIO_PROCESS, 0, priority)
            stack.callback(os.setpriority, os.PRIO_PROCESS, 0, before)
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


def add_lock_options(parser: argparse.ArgumentParser) -> None:
    """``--lock FILE`` and ``--lock-scope measure|all``."""
    parser.add_argument("--lock", type=Path, help="flock this file while measuring latency")
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
