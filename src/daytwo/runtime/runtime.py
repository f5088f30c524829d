"""The runtime of one process: launches DBOS, starts, waits for and manages runs.

DBOS is a process-wide singleton, so is an active :class:`Runtime`: use it as a
context manager (``with Runtime(...) as rt``) or call :meth:`launch` and
:meth:`shutdown`. The DBOS system database is a SQLite file under the data
directory by default, tuned for a durable log (WAL, ``synchronous=NORMAL``:
every checkpoint survives a process crash, ``kill -9`` included; a power loss
may lose the last few). With a PostgreSQL URL several worker processes share
the runs through one queue.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.exceptions import ConfigError, ConflictError, InputError
from daytwo.runtime.catalog import check_catalog
from daytwo.runtime.dbos_system import (
    APP_VERSION,
    QUEUE_NAME,
    ClientOps,
    dbos_config,
    open_client,
    prepare_outcomes,
    reenqueue_for_recovery,
    sqlite_system_engine,
    workflow_statuses,
)
from daytwo.runtime.engine import WORKFLOW_NAME, run_agent_workflow, set_active_runtime
from daytwo.runtime.executors import (
    DEFAULT_LEASE_S,
    Caretaker,
    claim_slot,
    open_runs,
    settle_ended,
)
from daytwo.runtime.records import FINAL, OPEN, RunRecords, insert_run, run_view, summary_view
from daytwo.runtime.registry import AgentRegistry
from daytwo.runtime.spec import ApprovalStep
from daytwo.runtime.steering import RunSteering
from daytwo.runtime.steps import Services
from daytwo.store import Store
from daytwo.tracing.propagation import context_carrier

__all__ = ["QUEUE_NAME", "Runtime", "check_catalog", "sqlite_system_engine"]


class Runtime:
    """Agent runs on DBOS for one process (a worker, the CLI, a test).

    Reading and steering runs (show, list, cancel, approve) works without
    launching DBOS, through a client; starting, resuming and forking runs need
    :meth:`launch` (this process then executes them). The run rows are kept by
    :class:`~daytwo.runtime.records.RunRecords`, steering is
    :class:`~daytwo.runtime.steering.RunSteering`, the DBOS system database is
    :mod:`daytwo.runtime.dbos_system`; this class binds them for one process.
    """

    def __init__(
        self,
        store: Store,
        services: Services | None = None,
        *,
        data_dir: Path = Path(".daytwo"),
        system_database_url: str | None = None,
        dbos_schema: str = "dbos",
        executor_id: str | None = None,
        workers: int = 4,
        sqlite_synchronous: str = "NORMAL",
        lease_s: float = DEFAULT_LEASE_S,
        enqueue_only: bool = False,
    ) -> None:
        self.store = store
        self.services = services or Services()
        self.registry = AgentRegistry(store)
        self.records = RunRecords(store, self.audit)
        self._steering = RunSteering(self.records, self.registry, self._ops, self)
        if system_database_url is None:
            if store.is_sqlite:
                system_database_url = f"sqlite:///{(data_dir / 'dbos.sqlite').as_posix()}"
            else:
                system_database_url = store.url
        self.system_database_url = system_database_url
        if enqueue_only and sa.engine.make_url(system_database_url).get_backend_name() == "sqlite":
            raise ConfigError(
                "enqueue-only runtimes (DAYTWO_SERVE_RUNS=enqueue) need PostgreSQL: over SQLite "
                "the API and the run workers would take turns at one file's write lock",
                hint="set DAYTWO_DATABASE_URL to a PostgreSQL URL, or DAYTWO_SERVE_RUNS=execute",
            )
        self.enqueue_only = enqueue_only
        self.dbos_schema = dbos_schema
        self.executor_id = executor_id
        self.lease_s = lease_s
        self.workers = workers
        self.sqlite_synchronous = sqlite_synchronous
        self._launched = False
        self._queue: Any = None
        self._client: ClientOps | None = None
        self._client_lock = threading.Lock()
        self._caretaker: Caretaker | None = None
        # Runs :meth:`start` created as running, to run in the caller's thread, with
        # their creation time: their workflow need not mark them running, nor read the
        # creation time back to write the latency at their end (a write and a read less).
        self._created_running: dict[str, datetime] = {}

    def _ops(self) -> Any:
        """DBOS itself when launched, else a client on the same system database."""
        if self._launched:
            from dbos import DBOS

            return DBOS
        client = self._client
        if client is None:
            with self._client_lock:  # request threads of a server share one client
                if self._client is None:
                    self._client = open_client(
                        self.system_database_url, self.dbos_schema, self.sqlite_synchronous
                    )
                client = self._client
        return client

    def close(self) -> None:
        """Release the client connection (when one was opened)."""
        if self._client is not None:
            self._client.client.destroy()
            self._client = None

    # -- lifecycle ---------------------------------------------------------
    def launch(self) -> Runtime:
        """Start DBOS in this process; pending runs of this executor are recovered.

        Without an explicit ``executor_id`` the process claims the first free slot
        ``<host>-<n>`` (a restarted worker takes its predecessor's slot and runs).
        The process then holds a lease and takes over runs of executors whose lease
        lapsed (see :mod:`daytwo.runtime.executors`); ``lease_s`` 0 turns that off.

        An ``enqueue_only`` runtime launches nothing: it executes no run and holds no
        lease; its runs are queued for the worker processes through a client.
        """
        from dbos import DBOS

        if self.enqueue_only:
            self._ops()  # open the client now, not in the first request
            return self
        if self.executor_id is None:
            self.executor_id = claim_slot(self.store, self.lease_s or DEFAULT_LEASE_S)
        self._release_recovered_claims(self.executor_id)
        config = dbos_config(
            self.system_database_url, self.dbos_schema, self.executor_id, self.sqlite_synchronous
        )
        set_active_runtime(self)
        DBOS(config=config)
        DBOS.launch()
        prepare_outcomes()
        self._queue = DBOS.register_queue(
            QUEUE_NAME, worker_concurrency=self.workers, polling_interval_sec=0.05
        )
        self._launched = True
        if self.lease_s > 0:
            self._caretaker = Caretaker(
                self.store,
                self.executor_id,
                lease_s=self.lease_s,
                app_version=APP_VERSION,
                workflows=workflow_statuses,
                reenqueue=reenqueue_for_recovery,
                release_claims=self._steering.release_run_claims,
                cancel=DBOS.cancel_workflow,
                audit=self.audit,
            )
            self._caretaker.start()
        return self

    def _release_recovered_claims(self, executor_id: str) -> None:
        """Drop the tool-call claims of the runs DBOS is about to recover for this executor.

        Their calls in flight died with the previous holder of this executor id; their
        claims would block the recovered calls until the gateway's claim lease ends.
        """
        open_ids = open_runs(self.store)
        if not open_ids:
            return
        pending = self._ops().client.list_workflows(
            workflow_ids=open_ids,
            status="PENDING",
            executor_id=executor_id,
            load_input=False,
            load_output=False,
        )
        for workflow in pending:
            self._steering.release_run_claims(workflow.workflow_id)
        self.close()

    def sweep(self) -> dict[str, list[str]]:
        """Take over runs of stopped executors and settle runs that cannot proceed, now."""
        if self._caretaker is None:
            raise ConflictError(
                "this runtime holds no executor lease", hint="launch it (with lease_s > 0) first"
            )
        return self._caretaker.sweep().as_dict()

    def shutdown(self) -> None:
        """Stop DBOS (running workflows stay pending and resume at the next launch)."""
        from dbos import DBOS

        caretaker, self._caretaker = self._caretaker, None
        if caretaker is not None:
            caretaker.halt()
        if self._launched:
            DBOS.destroy(destroy_registry=False)
            self._launched = False
        if caretaker is not None:
            caretaker.release()
        set_active_runtime(None)
        self.close()

    def __enter__(self) -> Runtime:
        return self.launch()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- starting runs -----------------------------------------------------
    def _new_run(
        self,
        agent: str,
        version: int | str | None,
        inputs: dict[str, Any],
        principal: str,
        run_id: str | None,
        session_id: str | None = None,
        user_id: str | None = None,
        inline: bool = False,
    ) -> tuple[str, int, bool, datetime]:
        """Record a new run: (its id, the version, whether it runs inline, its creation).

        ``inline``: the caller runs the workflow in its thread at once, unless the
        agent waits for approvals; such a run is created running, not queued.
        """
        if not isinstance(inputs, dict):
            raise InputError("run inputs must be a JSON object", hint='e.g. {"question": "..."}')
        rid = run_id or uuid.uuid4().hex

        def create(s: Session) -> tuple[int, bool, datetime]:
            # One write transaction: the version is resolved where the run that records
            # it is inserted (no separate read of the registry), and a catalog the spec
            # does not fit rolls it back (nothing written).
            number = self.registry.resolve_in(s, agent, version)
            spec = self.registry.spec(agent, number, s)
            check_catalog(spec, self.services.tools)
            runs_inline = inline and not any(isinstance(st, ApprovalStep) for st in spec.steps)
            created = insert_run(
                s,
                rid,
                agent,
                number,
                inputs,
                principal,
                session_id=session_id,
                user_id=user_id,
                must_be_new=run_id is not None,
                status="running" if runs_inline else "queued",
            )
            return number, runs_inline, created

        number, inline, created = self.store.write(create)
        self.audit("run.start", principal or "anonymous", rid, {"agent": agent, "version": number})
        return rid, number, inline, created

    def enqueue(
        self,
        agent: str,
        inputs: dict[str, Any],
        *,
        version: int | str | None = None,
        principal: str = "",
        run_id: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> str:
        """Queue a run for any worker of this system database; returns its id.

        Works without launching DBOS here (through a client), so a CLI or a web
        process can hand runs to separate worker processes. ``session_id`` and
        ``user_id`` record the conversation and the end user the run belongs to.
        """
        from dbos import SetWorkflowID

        rid, number, _, _ = self._new_run(
            agent, version, inputs, principal, run_id, session_id=session_id, user_id=user_id
        )
        if self._launched:
            with SetWorkflowID(rid):
                self._queue.enqueue(
                    run_agent_workflow, agent, number, inputs, principal, context_carrier()
                )
        else:
            ops = self._ops()
            ops.client.enqueue(
                {
                    "queue_name": QUEUE_NAME,
                    "workflow_name": WORKFLOW_NAME,
                    "workflow_id": rid,
                    "app_version": APP_VERSION,
                    "application_name": "daytwo",
                },
                agent,
                number,
                inputs,
                principal,
                context_carrier(),  # the worker's run span joins the caller's trace
            )
        return rid

    def start(
        self,
        agent: str,
        inputs: dict[str, Any],
        *,
        version: int | str | None = None,
        principal: str = "",
        run_id: str | None = None,
        wait: bool = True,
        timeout_s: float = 600.0,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """Run an agent in this process (an ``enqueue_only`` runtime: queue it for the
        workers); with ``wait`` return the finished run.

        ``session_id`` and ``user_id`` record the conversation and the end user the run
        belongs to (the trace explorer strings a session's runs together).
        """
        from dbos import DBOS, SetWorkflowID

        if self.enqueue_only:
            rid = self.enqueue(
                agent,
                inputs,
                version=version,
                principal=principal,
                run_id=run_id,
                session_id=session_id,
                user_id=user_id,
            )
            if wait:
                return self.wait(rid, timeout_s=timeout_s)
            # Just queued: the row is the whole truth, no workflow status to consult.
            return run_view(self.records.row(rid))
        rid, number, inline, created = self._new_run(
            agent,
            version,
            inputs,
            principal,
            run_id,
            session_id=session_id,
            user_id=user_id,
            inline=wait,
        )
        if inline:
            # Run the workflow in this thread: no hand-off to DBOS's pool, no polling.
            # The row says running from its first write; should this process stop
            # before the workflow is recorded, the caretaker fails the run as it does
            # a queued one that never reached a worker.
            self._created_running[rid] = created
            try:
                with SetWorkflowID(rid):
                    summary = run_agent_workflow(
                        agent, number, inputs, principal, context_carrier()
                    )
            finally:
                self._created_running.pop(rid, None)
            view = summary_view(rid, agent, number, inputs, principal, summary)
            return view if view is not None else self.show(rid, steps=False)
        with SetWorkflowID(rid):
            DBOS.start_workflow(
                run_agent_workflow, agent, number, inputs, principal, context_carrier()
            )
        if not wait:
            return self.show(rid, steps=False)
        return self.wait(rid, timeout_s=timeout_s)

    def wait(self, run_id: str, *, timeout_s: float = 600.0) -> dict[str, Any]:
        """Block until the run is final (or waiting for approval); return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.show(run_id, steps=False)
            if run["status"] == "waiting" or (
                run["status"] in FINAL and self._workflow_done(run_id)
            ):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} not finished after {timeout_s} s")
            time.sleep(0.01)

    def _workflow_done(self, run_id: str) -> bool:
        status = self._ops().get_workflow_status(run_id)
        return status is None or status.status not in {"PENDING", "ENQUEUED"}

    # -- recording (the engine's RunHost; called from inside durable steps) --
    def finish_run(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write the run's final status, partial results and decisions."""
        created = self._created_running.get(summary["run_id"])
        return self.records.finish_run(summary, created_at=created)

    def mark_running(self, run_id: str) -> None:
        """Record that a worker executes the run (a queued run only; idempotent on replay)."""
        if run_id in self._created_running:
            return  # created running by :meth:`start`, in this thread
        self.records.mark_running(run_id)

    def mark_waiting(self, run_id: str, step_id: str) -> dict[str, Any]:
        """Record that the run waits for an approval."""
        return self.records.mark_waiting(run_id, step_id)

    def audit(self, kind: str, actor: str, subject: str, data: dict[str, Any]) -> None:
        """Append an audit record when an audit sink is bound."""
        sink = self.services.audit
        if sink is not None:
            sink.append(kind, actor, subject, data)

    def audit_step(self, run_id: str, step_id: str, result: dict[str, Any]) -> None:
        """Audit one step's outcome (never its output: it may hold personal data)."""
        self.records.audit_step(run_id, step_id, result)

    # -- reading and steering runs -----------------------------------------
    def show(self, run_id: str, *, steps: bool = True) -> dict[str, Any]:
        """The run as recorded, with its checkpointed steps from DBOS."""
        row = self.records.row(run_id)
        if row.status in OPEN:
            # A workflow that ended without recording it (an unexpected error, a cancel
            # through DBOS) settles the row here, so every reader sees one status.
            workflow = self._ops().get_workflow_status(run_id)
            if workflow is not None and settle_ended(self.store, run_id, workflow):
                row = self.records.row(run_id)
        out = run_view(row)
        if steps:
            out["checkpoints"] = [
                {
                    "n": s["function_id"],
                    "name": s["function_name"],
                    "status": (s["output"] or {}).get("status")
                    if isinstance(s["output"], dict)
                    else None,
                    "tool": (s["output"] or {}).get("tool")
                    if isinstance(s["output"], dict)
                    else None,
                    "ms": (s["completed_at_epoch_ms"] or 0) - (s["started_at_epoch_ms"] or 0),
                    "error": str(s["error"]) if s["error"] else None,
                }
                for s in self._ops().list_workflow_steps(run_id)
            ]
        return out

    def list_runs(
        self, *, agent: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Recent runs, newest first."""
        return self.records.recent(agent=agent, status=status, limit=limit)

    def cancel(
        self, run_id: str, *, by: str = "operator", data: dict[str, Any] | None = None
    ) -> None:
        """Cancel a run: it stops before its next step.

        ``by`` names who cancelled (the server passes the key's principal string) and
        goes into the ``run.cancel`` audit record with ``data``. The workflow is
        cancelled before the record is written, so no step starts after it.
        """
        self._steering.cancel(run_id, by=by, data=data)

    def resume(self, run_id: str, *, wait: bool = True, timeout_s: float = 600.0) -> dict[str, Any]:
        """Resume a cancelled, interrupted or failed run from its last completed step.

        A cancelled or interrupted run continues in place. A failed run's workflow has
        ended, so it is re-run as a new run forked from its first step that did not
        succeed (the steps before are reused, not run again); the new run is returned
        (``forked_from`` names the failed one).
        """
        return self._steering.resume(run_id, wait=wait, timeout_s=timeout_s)

    def fork(
        self, run_id: str, from_step: int | str, *, wait: bool = True, timeout_s: float = 600.0
    ) -> dict[str, Any]:
        """Re-run ``run_id`` from one of its steps (1-based position or step id), same inputs."""
        return self._steering.fork(run_id, from_step, wait=wait, timeout_s=timeout_s)

    def approve(
        self, run_id: str, step_id: str, *, approved: bool = True, by: str = "", note: str = ""
    ) -> None:
        """Answer a run waiting at an approval step."""
        self._steering.approve(run_id, step_id, approved=approved, by=by, note=note)
