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

import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.runtime.engine import WORKFLOW_NAME, run_agent_workflow, set_active_runtime
from daytwo.runtime.executors import (
    DEFAULT_LEASE_S,
    Caretaker,
    claim_slot,
    open_runs,
    settle_ended,
)
from daytwo.runtime.protocols import ToolInvoker
from daytwo.runtime.registry import AgentRegistry
from daytwo.runtime.spec import AgentSpec, ApprovalStep, MapStep, PlanStep, SpecError, ToolStep
from daytwo.runtime.steps import Services
from daytwo.store import Store, utcnow
from daytwo.store.tables.runtime import RunRecord
from daytwo.tracing.propagation import context_carrier

__all__ = ["QUEUE_NAME", "Runtime", "check_catalog", "sqlite_system_engine"]

QUEUE_NAME = "daytwo-runs"
APP_VERSION = "daytwo-runtime-1"
_FINAL = {"succeeded", "failed", "cancelled"}
_OPEN = ("queued", "running", "waiting")


def sqlite_system_engine(url: str, *, synchronous: str = "NORMAL") -> sa.Engine:
    """A DBOS system-database engine on SQLite: WAL journal, IMMEDIATE writers."""
    from sqlalchemy import event

    Path(sa.engine.make_url(url).database or ".").expanduser().parent.mkdir(
        parents=True, exist_ok=True
    )
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")
        dbapi_conn.execute("PRAGMA cache_size=-16000")
        dbapi_conn.execute("PRAGMA temp_store=MEMORY")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    return engine


def check_catalog(spec: AgentSpec, tools: ToolInvoker | None) -> None:
    """Raise SpecError when a step names a tool or capability the catalog does not have."""
    if tools is None:
        return
    known = set(tools.tools())
    for step in (*spec.steps, *spec.degraded):
        names: list[str] = []
        if isinstance(step, (ToolStep, MapStep)) and step.tool is not None:
            names.append(step.tool)
        if isinstance(step, PlanStep):
            names.extend(step.tools)
        for name in names:
            if name not in known:
                raise SpecError(
                    f"agent {spec.name!r}: step {step.id!r} names unknown tool {name!r}",
                    hint=f"known tools: {', '.join(sorted(known)) or 'none'}",
                )
        if (
            isinstance(step, ToolStep)
            and step.capability is not None
            and not tools.tools(step.capability)
        ):
            raise SpecError(
                f"agent {spec.name!r}: step {step.id!r} names capability "
                f"{step.capability!r}, which no tool offers",
                hint="register a tool with this capability or fix the name",
            )


class _ClientOps:
    """The DBOS operations the runtime needs, through a DBOSClient (no launch, no recovery)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_workflow_status(self, run_id: str) -> Any:
        try:
            return self.client.retrieve_workflow(run_id).get_status()
        except Exception:
            return None

    def list_workflow_steps(self, run_id: str) -> list[Any]:
        steps: list[Any] = self.client.list_workflow_steps(run_id)
        return steps

    def cancel_workflow(self, run_id: str) -> None:
        self.client.cancel_workflow(run_id)

    def send(self, run_id: str, message: Any, topic: str, *, idempotency_key: str) -> None:
        self.client.send(run_id, message, topic, idempotency_key)


class Runtime:
    """Agent runs on DBOS for one process (a worker, the CLI, a test).

    Reading and steering runs (show, list, cancel, approve) works without
    launching DBOS, through a client; starting, resuming and forking runs need
    :meth:`launch` (this process then executes them).
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
    ) -> None:
        self.store = store
        self.services = services or Services()
        self.registry = AgentRegistry(store)
        if system_database_url is None:
            if store.is_sqlite:
                system_database_url = f"sqlite:///{(data_dir / 'dbos.sqlite').as_posix()}"
            else:
                system_database_url = store.url
        self.system_database_url = system_database_url
        self.dbos_schema = dbos_schema
        self.executor_id = executor_id
        self.lease_s = lease_s
        self.workers = workers
        self.sqlite_synchronous = sqlite_synchronous
        self._launched = False
        self._queue: Any = None
        self._client: _ClientOps | None = None
        self._caretaker: Caretaker | None = None

    def _ops(self) -> Any:
        """DBOS itself when launched, else a client on the same system database."""
        if self._launched:
            from dbos import DBOS

            return DBOS
        if self._client is None:
            from dbos import DBOS, DBOSClient

            url = sa.engine.make_url(self.system_database_url)
            if url.get_backend_name() == "sqlite":
                Path(url.database or ".").expanduser().parent.mkdir(parents=True, exist_ok=True)
            # A client does not create the DBOS tables; make sure they exist.
            DBOS.migrate(self.system_database_url, schema=self.dbos_schema)
            if url.get_backend_name() == "sqlite":
                client = DBOSClient(
                    system_database_engine=sqlite_system_engine(
                        self.system_database_url, synchronous=self.sqlite_synchronous
                    ),
                    dbos_system_schema=self.dbos_schema,
                )
            else:
                client = DBOSClient(
                    system_database_url=self.system_database_url,
                    dbos_system_schema=self.dbos_schema,
                )
            self._client = _ClientOps(client)
        return self._client

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
        """
        from dbos import DBOS, DBOSConfig

        if self.executor_id is None:
            self.executor_id = claim_slot(self.store, self.lease_s or DEFAULT_LEASE_S)
        self._release_recovered_claims(self.executor_id)
        config: DBOSConfig = {
            "name": "daytwo",
            "system_database_url": self.system_database_url,
            "application_version": APP_VERSION,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
            "dbos_system_schema": self.dbos_schema,
            "notification_listener_polling_interval_sec": 0.05,
        }
        url = sa.engine.make_url(self.system_database_url)
        if url.get_backend_name() == "sqlite":
            config["system_database_engine"] = sqlite_system_engine(
                self.system_database_url, synchronous=self.sqlite_synchronous
            )
        set_active_runtime(self)
        DBOS(config=config)
        DBOS.launch()
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
                workflows=_workflow_statuses,
                reenqueue=_reenqueue_for_recovery,
                release_claims=self._release_run_claims,
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
            self._release_run_claims(workflow.workflow_id)
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
        forked_from: str | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
    ) -> tuple[str, int]:
        if not isinstance(inputs, dict):
            raise InputError("run inputs must be a JSON object", hint='e.g. {"question": "..."}')
        number = self.registry.resolve(agent, version)
        check_catalog(self.registry.spec(agent, number), self.services.tools)
        rid = run_id or uuid.uuid4().hex
        if run_id is not None:
            with self.store.session() as s:
                if s.get(RunRecord, rid) is not None:
                    raise ConflictError(f"run {rid} exists already", hint="use another run id")
        # A write transaction, retried while SQLite stays locked (the insert is all it does).
        self.store.write(
            lambda s: s.add(
                RunRecord(
                    id=rid,
                    agent_name=agent,
                    agent_version=number,
                    status="queued",
                    inputs=inputs,
                    outputs={},
                    decisions=[],
                    principal=principal,
                    forked_from=forked_from,
                    session_id=session_id,
                    user_id=user_id,
                )
            )
        )
        self.audit("run.start", principal or "anonymous", rid, {"agent": agent, "version": number})
        return rid, number

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

        rid, number = self._new_run(
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
        """Run an agent in this process; with ``wait`` return the finished run.

        ``session_id`` and ``user_id`` record the conversation and the end user the run
        belongs to (the trace explorer strings a session's runs together).
        """
        from dbos import DBOS, SetWorkflowID

        rid, number = self._new_run(
            agent, version, inputs, principal, run_id, session_id=session_id, user_id=user_id
        )
        spec = self.registry.spec(agent, number)
        if wait and not any(isinstance(s, ApprovalStep) for s in spec.steps):
            # Run the workflow in this thread: no hand-off to DBOS's pool, no polling.
            with SetWorkflowID(rid):
                summary = run_agent_workflow(agent, number, inputs, principal, context_carrier())
            return self._from_summary(rid, agent, number, inputs, principal, summary)
        with SetWorkflowID(rid):
            DBOS.start_workflow(
                run_agent_workflow, agent, number, inputs, principal, context_carrier()
            )
        if not wait:
            return self.show(rid, steps=False)
        return self.wait(rid, timeout_s=timeout_s)

    def _from_summary(
        self,
        run_id: str,
        agent: str,
        version: int,
        inputs: dict[str, Any],
        principal: str,
        summary: dict[str, Any],
    ) -> dict[str, Any]:
        """The run as :meth:`show` would read it back, built from the workflow's result."""
        if summary.get("run_id") != run_id or summary.get("status") not in _FINAL:
            return self.show(run_id, steps=False)
        return {
            "id": run_id,
            "agent": agent,
            "version": version,
            "status": summary["status"],
            "principal": principal,
            "inputs": inputs,
            "outputs": {"answer": summary["answer"], "steps": summary["outputs"]},
            "decisions": summary["decisions"],
            "error": summary["error"],
            "forked_from": None,
            "steps_done": summary["steps"],
            "tokens": summary["tokens"],
            "cost_usd": summary["cost_usd"],
        }

    def wait(self, run_id: str, *, timeout_s: float = 600.0) -> dict[str, Any]:
        """Block until the run is final (or waiting for approval); return it."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.show(run_id, steps=False)
            if run["status"] == "waiting" or (
                run["status"] in _FINAL and self._workflow_done(run_id)
            ):
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} not finished after {timeout_s} s")
            time.sleep(0.01)

    def _workflow_done(self, run_id: str) -> bool:
        status = self._ops().get_workflow_status(run_id)
        return status is None or status.status not in {"PENDING", "ENQUEUED"}

    # -- recording (called from inside durable steps) ----------------------
    def finish_run(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Write the run's final status, partial results and decisions."""
        # One UPDATE, no read first: on SQLite a read-then-write transaction cannot
        # wait for the lock (its snapshot would be stale), a plain UPDATE can.
        final = (
            sa.update(RunRecord)
            .where(RunRecord.id == summary["run_id"], RunRecord.status != "cancelled")
            .values(
                status=summary["status"],
                outputs={"answer": summary["answer"], "steps": summary["outputs"]},
                decisions=summary["decisions"],
                error=summary["error"],
                steps_done=summary["steps"],
                tokens=summary["tokens"],
                cost_usd=summary["cost_usd"],
                finished_at=utcnow(),
            )
        )
        self.store.write(lambda s: s.execute(final))
        self.audit(
            "run.end",
            "runtime",
            summary["run_id"],
            {"status": summary["status"], "error": summary["error"], "steps": summary["steps"]},
        )
        return summary

    def mark_running(self, run_id: str) -> None:
        """Record that a worker executes the run (a queued run only; idempotent on replay)."""
        running = (
            sa.update(RunRecord)
            .where(RunRecord.id == run_id, RunRecord.status == "queued")
            .values(status="running")
        )
        self.store.write(lambda s: s.execute(running))

    def mark_waiting(self, run_id: str, step_id: str) -> dict[str, Any]:
        """Record that the run waits for an approval."""
        waiting = (
            sa.update(RunRecord)
            .where(RunRecord.id == run_id)
            .values(status="waiting", error=f"waiting for approval {step_id!r}")
        )
        self.store.write(lambda s: s.execute(waiting))
        return {"status": "ok", "output": step_id}

    def audit(self, kind: str, actor: str, subject: str, data: dict[str, Any]) -> None:
        """Append an audit record when an audit sink is bound."""
        sink = self.services.audit
        if sink is not None:
            sink.append(kind, actor, subject, data)

    def audit_step(self, run_id: str, step_id: str, result: dict[str, Any]) -> None:
        """Audit one step's outcome (never its output: it may hold personal data)."""
        self.audit(
            "run.step",
            "runtime",
            run_id,
            {
                "step": step_id,
                "status": result.get("status"),
                "tool": result.get("tool"),
                "attempts": result.get("attempts"),
            },
        )

    # -- managing runs -----------------------------------------------------
    def _set(self, run_id: str, **values: Any) -> None:
        change = sa.update(RunRecord).where(RunRecord.id == run_id).values(**values)
        self.store.write(lambda s: s.execute(change))

    def _row(self, run_id: str) -> RunRecord:
        with self.store.session() as s:
            row = s.get(RunRecord, run_id)
            if row is None:
                raise NotFoundError(f"no run {run_id!r}", hint="see `daytwo runs list`")
            return row

    def show(self, run_id: str, *, steps: bool = True) -> dict[str, Any]:
        """The run as recorded, with its checkpointed steps from DBOS."""
        row = self._row(run_id)
        if row.status in _OPEN:
            # A workflow that ended without recording it (an unexpected error, a cancel
            # through DBOS) settles the row here, so every reader sees one status.
            workflow = self._ops().get_workflow_status(run_id)
            if workflow is not None and settle_ended(self.store, run_id, workflow):
                row = self._row(run_id)
        out = _row_dict(row)
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
        with self.store.session() as s:
            q = sa.select(RunRecord).order_by(RunRecord.created_at.desc()).limit(limit)
            if agent:
                q = q.where(RunRecord.agent_name == agent)
            if status:
                q = q.where(RunRecord.status == status)
            return [_row_dict(r) for r in s.scalars(q).all()]

    def cancel(
        self, run_id: str, *, by: str = "operator", data: dict[str, Any] | None = None
    ) -> None:
        """Cancel a run: it stops before its next step.

        ``by`` names who cancelled (the server passes the key's principal string) and
        goes into the ``run.cancel`` audit record with ``data``. The workflow is
        cancelled before the record is written, so no step starts after it.
        """
        row = self._row(run_id)
        if row.status in _FINAL:
            raise ConflictError(f"run {run_id} is already {row.status}", hint="nothing to cancel")
        self._ops().cancel_workflow(run_id)
        self._set(run_id, status="cancelled", finished_at=utcnow())
        self.audit("run.cancel", by, run_id, dict(data or {}))

    def resume(self, run_id: str, *, wait: bool = True, timeout_s: float = 600.0) -> dict[str, Any]:
        """Resume a cancelled, interrupted or failed run from its last completed step.

        A cancelled or interrupted run continues in place. A failed run's workflow has
        ended, so it is re-run as a new run forked from its first step that did not
        succeed (the steps before are reused, not run again); the new run is returned
        (``forked_from`` names the failed one).
        """
        from dbos import DBOS

        row = self._row(run_id)
        if row.status == "succeeded":
            raise ConflictError(f"run {run_id} already succeeded", hint="fork it to re-run")
        workflow = self._ops().get_workflow_status(run_id)
        if workflow is not None and workflow.status in {"SUCCESS", "ERROR"}:
            # The run failed and its workflow has ended: DBOS cannot continue it in
            # place, so it is re-run as a new run from its first unfinished step (a
            # fork: the finished steps' results are reused, not run again).
            return self._fork_at(
                row, self._retry_point(run_id), wait=wait, timeout_s=timeout_s, by="resume"
            )
        self._release_claims(run_id, row.agent_name, row.agent_version)
        self._set(run_id, status="queued", error=None, finished_at=None)
        DBOS.resume_workflow(run_id)
        return self.wait(run_id, timeout_s=timeout_s) if wait else self.show(run_id, steps=False)

    def _release_run_claims(self, run_id: str) -> None:
        row = self._row(run_id)
        self._release_claims(run_id, row.agent_name, row.agent_version)

    def _release_claims(self, run_id: str, agent: str, version: int) -> None:
        """Drop the run's pending tool-call claims (its worker died in the middle of a call).

        Resuming says the run's worker is gone: without this, the interrupted step's
        idempotency claim would block the resumed call until its lease expires. Done
        calls keep their stored results, so a finished side effect still happens once.
        """
        from daytwo.runtime.steps import idempotency_key
        from daytwo.store.tables.gateway import GatewayIdempotency

        spec = self.registry.spec(agent, version)
        keys = [idempotency_key(run_id, step.id) for step in (*spec.steps, *spec.degraded)]
        release = sa.delete(GatewayIdempotency).where(
            GatewayIdempotency.key.in_(keys), GatewayIdempotency.status == "pending"
        )
        self.store.write(lambda s: s.execute(release))

    def fork(
        self, run_id: str, from_step: int | str, *, wait: bool = True, timeout_s: float = 600.0
    ) -> dict[str, Any]:
        """Re-run ``run_id`` from one of its steps (1-based position or step id), same inputs."""
        from dbos import DBOS

        row = self._row(run_id)
        checkpoints: list[dict[str, Any]] = [dict(s) for s in DBOS.list_workflow_steps(run_id)]
        agent_steps = [c for c in checkpoints if c["function_name"].startswith("step:")]
        target: dict[str, Any] | None = None
        if isinstance(from_step, int) or str(from_step).isdigit():
            n = int(from_step)
            if 1 <= n <= len(agent_steps):
                target = agent_steps[n - 1]
        else:
            target = next(
                (c for c in checkpoints if c["function_name"] == f"step:{from_step}"), None
            )
        if target is None:
            names = ", ".join(c["function_name"].removeprefix("step:") for c in agent_steps)
            raise InputError(
                f"run {run_id} has no step {from_step!r} to fork from",
                hint=f"give 1..{len(agent_steps)} or a step id ({names})",
            )
        return self._fork_at(
            row, target["function_id"], wait=wait, timeout_s=timeout_s, step=str(from_step)
        )

    def _retry_point(self, run_id: str) -> int:
        """The checkpoint a failed run is re-run from: its first step that did not succeed.

        Without one (a budget or an approval stopped the run between steps), the run's
        final checkpoint, so the steps it finished are all reused.
        """
        from dbos import DBOS

        checkpoints: list[dict[str, Any]] = [dict(c) for c in DBOS.list_workflow_steps(run_id)]
        for c in checkpoints:
            output = c.get("output")
            agent_step = str(c["function_name"]).startswith(("step:", "plan:", "replan:"))
            if agent_step and (
                c.get("error") or not isinstance(output, dict) or output.get("status") != "ok"
            ):
                return int(c["function_id"])
        if not checkpoints:
            raise ConflictError(
                f"run {run_id} has no checkpoint to re-run from",
                hint="start it again: daytwo runs start AGENT",
            )
        return int(checkpoints[-1]["function_id"])

    def _fork_at(
        self,
        row: RunRecord,
        function_id: int,
        *,
        wait: bool,
        timeout_s: float,
        step: str | None = None,
        by: str = "fork",
    ) -> dict[str, Any]:
        from dbos import DBOS, SetWorkflowID

        run_id = row.id
        new_id = uuid.uuid4().hex
        with self.store.session(write=True) as s:
            s.add(
                RunRecord(
                    id=new_id,
                    agent_name=row.agent_name,
                    agent_version=row.agent_version,
                    status="queued",
                    inputs=row.inputs,
                    outputs={},
                    decisions=[],
                    principal=row.principal,
                    forked_from=run_id,
                )
            )
        with SetWorkflowID(new_id):
            DBOS.fork_workflow(run_id, function_id)
        data: dict[str, Any] = {"from": run_id, "checkpoint": function_id, "why": by}
        if step is not None:
            data["step"] = step
        self.audit("run.fork", "operator", new_id, data)
        return self.wait(new_id, timeout_s=timeout_s) if wait else self.show(new_id, steps=False)

    def approve(
        self, run_id: str, step_id: str, *, approved: bool = True, by: str = "", note: str = ""
    ) -> None:
        """Answer a run waiting at an approval step."""
        row = self._row(run_id)
        if row.status != "waiting":
            raise ConflictError(
                f"run {run_id} is not waiting for an approval (status {row.status})",
                hint="see `daytwo runs show RUN`",
            )
        self._set(run_id, status="running", error=None)
        self._ops().send(
            run_id,
            {"approved": approved, "by": by, "note": note},
            f"approval:{step_id}",
            idempotency_key=f"{run_id}:{step_id}",
        )
        self.audit(
            "run.approval", by or "operator", run_id, {"step": step_id, "approved": approved}
        )


def _workflow_statuses(ids: list[str]) -> list[Any]:
    from dbos import DBOS

    statuses: list[Any] = DBOS.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
    return statuses


def _reenqueue_for_recovery(run_id: str, dead_executor: str) -> bool:
    """Hand a pending workflow of a stopped executor back to its queue (DBOS's recovery).

    Guarded by the dead executor's id: once a live process dequeued the workflow its
    row names that process, so a second sweeper's call changes nothing.
    """
    from dbos._dbos import _get_dbos_instance
    from dbos._utils import INTERNAL_QUEUE_NAME

    sys_db = _get_dbos_instance()._sys_db
    return bool(sys_db.reenqueue_for_recovery(run_id, [dead_executor], INTERNAL_QUEUE_NAME))


def _row_dict(row: RunRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "agent": row.agent_name,
        "version": row.agent_version,
        "status": row.status,
        "principal": row.principal,
        "inputs": row.inputs,
        "outputs": row.outputs,
        "decisions": row.decisions,
        "error": row.error,
        "forked_from": row.forked_from,
        "steps_done": row.steps_done,
        "tokens": row.tokens,
        "cost_usd": row.cost_usd,
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "session": row.session_id,
        "user": row.user_id,
    }
