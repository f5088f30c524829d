"""Who executes the runs: executor leases, takeover of a stopped executor's runs, the reaper.

DBOS recovers a workflow only for the executor id it was started under, at that
executor's next launch. A server worker replaced after ``kill -9`` used to come back
under a new id, so the dead worker's runs stayed ``PENDING`` forever. Here every
process that executes runs holds a lease in ``runtime_executors`` (renewed every
third of the lease) and, once in a while, looks after the runs of this store:

- **takeover**: a pending run whose executor's lease has lapsed (or that never had
  one) is re-enqueued, guarded by the dead executor's id, so exactly one live
  process dequeues it, whichever process noticed first;
- **reaper**: a run that can no longer proceed is marked failed with the reason
  (never handed to a worker, started by another daytwo version, its workflow
  ended with an error), and a run whose workflow ended differently from its row
  gets the workflow's status: one status for a run everywhere.

Slots: a process without an explicit executor id claims ``<host>-<n>``, the first
slot that is free (never used, shut down cleanly, or lease lapsed), so a worker
restarted on the same host takes its predecessor's id and DBOS's own startup
recovery resumes its runs at once.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from daytwo.runtime.records import end_run
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.runtime import RunRecord, RuntimeExecutor

__all__ = [
    "DEFAULT_LEASE_S",
    "Caretaker",
    "SweepReport",
    "claim_slot",
    "live_executors",
    "open_runs",
    "release",
    "renew",
    "settle_ended",
]

log = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
"""An executor that has not renewed its lease for this long is presumed stopped."""

_OPEN = ("queued", "running", "waiting")
_SWEEP_BATCH = 500


def _host() -> str:
    return (socket.gethostname() or "host")[:100]


def _host_key() -> str:
    """This host and PID namespace: where a lease's pid can be checked directly."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = "-"
    return f"{_host()}#{namespace}"[:255]


def _pid_gone(host: str, pid: int) -> bool:
    """True when ``pid`` of ``host`` is certainly not running (same host and namespace).

    A lease of a process killed on this host is void at once: its slot and runs need
    not wait for the lease to lapse. Elsewhere only the lease tells.
    """
    if host != _host_key() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def renew(store: Store, executor_id: str) -> None:
    """Renew (or take) the lease of ``executor_id`` for this process."""
    now = utcnow()
    pid = os.getpid()

    def work(s: Any) -> None:
        res = s.execute(
            sa.update(RuntimeExecutor)
            .where(RuntimeExecutor.executor_id == executor_id)
            .values(heartbeat_at=now, stopped_at=None, pid=pid, host=_host_key())
        )
        if res.rowcount == 0:
            s.add(
                RuntimeExecutor(
                    executor_id=executor_id,
                    host=_host_key(),
                    pid=pid,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    try:
        store.write(work)
    except IntegrityError:  # another process inserted the row first: renew it
        store.write(work)


def claim_slot(store: Store, lease_s: float, *, prefix: str | None = None) -> str:
    """Claim the first free executor slot ``<prefix>-<n>`` (default prefix: the host name).

    A slot is free when nobody ever held it, its holder shut down cleanly, or its
    lease lapsed. The claim is one conditional UPDATE (or an INSERT of a new slot),
    so two processes starting at once never get the same slot.
    """
    base = prefix or _host()
    pid = os.getpid()
    for n in range(10_000):
        executor_id = f"{base}-{n}"
        now = utcnow()

        def take(s: Any, executor_id: str = executor_id, now: datetime = now) -> bool:
            stale = now - timedelta(seconds=lease_s)
            res = s.execute(
                sa.update(RuntimeExecutor)
                .where(
                    RuntimeExecutor.executor_id == executor_id,
                    sa.or_(
                        RuntimeExecutor.stopped_at.is_not(None),
                        RuntimeExecutor.heartbeat_at < stale,
                    ),
                )
                .values(
                    heartbeat_at=now, started_at=now, stopped_at=None, pid=pid, host=_host_key()
                )
            )
            if res.rowcount == 1:
                return True
            row = s.get(RuntimeExecutor, executor_id)
            if row is not None:
                if not _pid_gone(row.host, row.pid):
                    return False  # held by a live process
                # Its holder died on this host (kill -9): take the slot now, guarded by
                # the dead holder's pid so two claimants cannot both win it.
                res = s.execute(
                    sa.update(RuntimeExecutor)
                    .where(
                        RuntimeExecutor.executor_id == executor_id,
                        RuntimeExecutor.pid == row.pid,
                        RuntimeExecutor.host == row.host,
                    )
                    .values(heartbeat_at=now, started_at=now, stopped_at=None, pid=pid)
                )
                return bool(res.rowcount == 1)
            s.add(
                RuntimeExecutor(
                    executor_id=executor_id,
                    host=_host_key(),
                    pid=pid,
                    started_at=now,
                    heartbeat_at=now,
                )
            )
            return True

        try:
            if store.write(take):
                return executor_id
        except IntegrityError:
            continue  # another process inserted this slot a moment ago
    raise RuntimeError(f"no free executor slot under {base!r}")  # pragma: no cover


def release(store: Store, executor_id: str) -> None:
    """Give the lease up (a clean shutdown): the slot is free at once."""
    now = utcnow()
    stop = (
        sa.update(RuntimeExecutor)
        .where(RuntimeExecutor.executor_id == executor_id, RuntimeExecutor.pid == os.getpid())
        .values(stopped_at=now)
    )
    store.write(lambda s: s.execute(stop))


def live_executors(store: Store, lease_s: float) -> set[str]:
    """Executor ids whose lease is current (and whose process, when on this host, runs)."""
    stale = utcnow() - timedelta(seconds=lease_s)
    with store.session() as s:
        rows = s.execute(
            sa.select(RuntimeExecutor.executor_id, RuntimeExecutor.host, RuntimeExecutor.pid).where(
                RuntimeExecutor.stopped_at.is_(None), RuntimeExecutor.heartbeat_at >= stale
            )
        ).all()
    return {eid for eid, host, pid in rows if not _pid_gone(host, pid)}


def open_runs(store: Store, limit: int = _SWEEP_BATCH) -> list[str]:
    """Ids of runs not final yet (queued, running or waiting), oldest first."""
    with store.session() as s:
        return list(
            s.scalars(
                sa.select(RunRecord.id)
                .where(RunRecord.status.in_(_OPEN))
                .order_by(RunRecord.created_at)
                .limit(limit)
            )
        )


def settle_ended(store: Store, run_id: str, workflow: Any) -> str | None:
    """Give an open run the status its ended workflow has; the new status, or None.

    A workflow that ended with an error (or ran out of recovery attempts) leaves a
    failed run with the error as reason; a cancelled one a cancelled run. Runs that
    are already final, and workflows still going, are left alone.
    """
    state = getattr(workflow, "status", None)
    if state in {"ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}:
        error = getattr(workflow, "error", None)
        reason = f"{type(error).__name__}: {error}" if error else str(state).lower()
        values: dict[str, Any] = {
            "status": "failed",
            "error": f"the run's workflow ended with an error: {reason}",
        }
    elif state == "CANCELLED":
        values = {"status": "cancelled"}
    else:
        return None
    settled = _settle(store, run_id, values)
    return str(values["status"]) if settled else None


def _settle(store: Store, run_id: str, values: dict[str, Any]) -> bool:
    """End an open run now with ``values``; whether it was still open."""
    return store.write(lambda s: end_run(s, run_id, values, only=RunRecord.status.in_(_OPEN)))


@dataclass
class SweepReport:
    """What one sweep did (each list holds run ids)."""

    taken_over: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    synced: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        """The report as plain lists."""
        return {"taken_over": self.taken_over, "failed": self.failed, "synced": self.synced}


class Caretaker:
    """Keeps this process's lease and looks after the store's runs, in one daemon thread.

    ``workflows(ids)`` returns DBOS's status records of those workflow ids;
    ``reenqueue(id, dead_executor)`` hands a pending workflow of a dead executor back
    to the queue (a no-op when it is no longer that executor's); ``release_claims(id)``
    drops the run's pending tool-call claims; ``cancel(id)`` stops a
    workflow; ``audit(kind, actor, subject, data)`` records what was done.
    """

    def __init__(
        self,
        store: Store,
        executor_id: str,
        *,
        lease_s: float,
        app_version: str,
        workflows: Callable[[list[str]], list[Any]],
        reenqueue: Callable[[str, str], bool],
        release_claims: Callable[[str], None],
        cancel: Callable[[str], None],
        audit: Callable[[str, str, str, dict[str, Any]], None],
    ) -> None:
        self.store = store
        self.executor_id = executor_id
        self.lease_s = lease_s
        self.app_version = app_version
        self._workflows = workflows
        self._reenqueue = reenqueue
        self._release_claims = release_claims
        self._cancel = cancel
        self._audit = audit
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the thread --------------------------------------------------------
    def start(self) -> None:
        """Take the lease and start renewing it (and sweeping) in the background."""
        renew(self.store, self.executor_id)
        self._thread = threading.Thread(
            target=self._loop, name=f"daytwo-caretaker-{self.executor_id}", daemon=True
        )
        self._thread.start()

    def halt(self) -> None:
        """Stop the thread (the lease lapses unless :meth:`release` follows)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def release(self) -> None:
        """Give the lease up: the slot is free at once (after DBOS stopped here)."""
        try:
            release(self.store, self.executor_id)
        except Exception:  # the store may be gone at interpreter exit
            log.debug("could not release executor %s", self.executor_id, exc_info=True)

    def _loop(self) -> None:
        beat = self.lease_s / 3
        # Sweeps are spread out (jitter) so several processes do not sweep in step.
        next_sweep = time.monotonic() + random.uniform(0.2, 0.5) * self.lease_s
        while not self._stop.wait(min(beat, max(0.05, next_sweep - time.monotonic()))):
            try:
                renew(self.store, self.executor_id)
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + random.uniform(0.4, 0.6) * self.lease_s
            except Exception:  # a store hiccup must not end the lease thread
                log.warning("executor %s: caretaker pass failed", self.executor_id, exc_info=True)

    # -- one pass ----------------------------------------------------------
    def sweep(self) -> SweepReport:
        """Take over orphaned runs and settle runs that can no longer proceed."""
        report = SweepReport()
        with self.store.session() as s:
            rows = s.execute(
                sa.select(RunRecord.id, RunRecord.status, RunRecord.created_at)
                .where(RunRecord.status.in_(_OPEN))
                .order_by(RunRecord.created_at)
                .limit(_SWEEP_BATCH)
            ).all()
        if not rows:
            return report
        statuses = {w.workflow_id: w for w in self._workflows([r.id for r in rows])}
        live = live_executors(self.store, self.lease_s) | {self.executor_id}
        settled_before = utcnow() - timedelta(seconds=self.lease_s)
        for run_id, _status, created_at in rows:
            wf = statuses.get(run_id)
            if wf is None:
                if created_at < settled_before:
                    self._fail(
                        run_id,
                        "the run was recorded but never handed to a worker (the process that "
                        "started it stopped first); start it again",
                        report,
                    )
                continue
            state = wf.status
            if state == "PENDING" and wf.executor_id not in live:
                if wf.app_version != self.app_version:
                    self._cancel(run_id)
                    self._fail(
                        run_id,
                        f"its worker stopped and the run was started by daytwo "
                        f"{wf.app_version}, which this version ({self.app_version}) cannot "
                        "resume; fork it to run it again",
                        report,
                    )
                    continue
                # The dead worker's tool call in flight holds an idempotency claim that
                # would block the call when it runs again here: drop it first (finished
                # calls keep their stored results, so their effects still happen once).
                self._release_claims(run_id)
                if self._reenqueue(run_id, wf.executor_id):
                    report.taken_over.append(run_id)
                    self._audit(
                        "run.takeover",
                        f"runtime:{self.executor_id}",
                        run_id,
                        {"from_executor": wf.executor_id, "lease_s": self.lease_s},
                    )
            else:
                settled = settle_ended(self.store, run_id, wf)
                if settled == "failed":
                    report.failed.append(run_id)
                    self._audit(
                        "run.reaped",
                        f"runtime:{self.executor_id}",
                        run_id,
                        {"reason": f"its workflow ended: {state}"},
                    )
                elif settled is not None:
                    report.synced.append(run_id)
        return report

    def _fail(self, run_id: str, reason: str, report: SweepReport) -> None:
        failed = {"status": "failed", "error": reason}
        if _settle(self.store, run_id, failed):
            report.failed.append(run_id)
            self._audit("run.reaped", f"runtime:{self.executor_id}", run_id, {"reason": reason})
