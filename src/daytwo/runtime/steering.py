"""Steering runs that exist: cancel, resume, fork, approve.

Works on the run rows (:mod:`daytwo.runtime.records`) and on DBOS through whichever
operations the runtime hands it (DBOS launched here, or a client); a resumed or
forked run goes back to DBOS's queue, so whichever process executes runs (this one,
or a ``daytwo runs worker`` when this is an enqueue-only API process) continues it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from daytwo.exceptions import ConflictError, InputError
from daytwo.runtime.records import FINAL, RunRecords
from daytwo.runtime.registry import AgentRegistry
from daytwo.store.tables.runtime import RunRecord

__all__ = ["RunSteering", "RunWatcher"]


class RunWatcher(Protocol):
    """How a steered run is read back (:class:`~daytwo.runtime.Runtime` is one)."""

    def show(self, run_id: str, *, steps: bool = True) -> dict[str, Any]: ...

    def wait(self, run_id: str, *, timeout_s: float = 600.0) -> dict[str, Any]: ...


class RunSteering:
    """Cancel, resume, fork and approve the runs of one store."""

    def __init__(
        self,
        records: RunRecords,
        registry: AgentRegistry,
        ops: Callable[[], Any],
        watcher: RunWatcher,
    ) -> None:
        self.records = records
        self.registry = registry
        self.ops = ops
        self.watcher = watcher

    def _read_back(self, run_id: str, wait: bool, timeout_s: float) -> dict[str, Any]:
        if wait:
            return self.watcher.wait(run_id, timeout_s=timeout_s)
        return self.watcher.show(run_id, steps=False)

    def cancel(self, run_id: str, *, by: str, data: dict[str, Any] | None) -> None:
        """Cancel the workflow first, then record it: no step starts after the record."""
        row = self.records.row(run_id)
        if row.status in FINAL:
            raise ConflictError(f"run {run_id} is already {row.status}", hint="nothing to cancel")
        self.ops().cancel_workflow(run_id)
        self.records.end(run_id, status="cancelled")
        self.records.audit("run.cancel", by, run_id, dict(data or {}))

    def resume(self, run_id: str, *, wait: bool, timeout_s: float) -> dict[str, Any]:
        """Continue a cancelled or interrupted run in place; re-run a failed one as a fork."""
        row = self.records.row(run_id)
        if row.status == "succeeded":
            raise ConflictError(f"run {run_id} already succeeded", hint="fork it to re-run")
        workflow = self.ops().get_workflow_status(run_id)
        if workflow is not None and workflow.status in {"SUCCESS", "ERROR"}:
            # The run failed and its workflow has ended: DBOS cannot continue it in
            # place, so it is re-run as a new run from its first unfinished step (a
            # fork: the finished steps' results are reused, not run again).
            return self._fork_at(
                row, self._retry_point(run_id), wait=wait, timeout_s=timeout_s, by="resume"
            )
        self._release_claims(run_id, row.agent_name, row.agent_version)
        self.records.reopen(run_id, status="queued", error=None)
        self.ops().resume_workflow(run_id)
        return self._read_back(run_id, wait, timeout_s)

    def release_run_claims(self, run_id: str) -> None:
        """Drop the pending tool-call claims of a run whose worker died."""
        row = self.records.row(run_id)
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
        self.records.store.write(lambda s: s.execute(release))

    def fork(
        self, run_id: str, from_step: int | str, *, wait: bool, timeout_s: float
    ) -> dict[str, Any]:
        """Re-run ``run_id`` from one of its steps (1-based position or step id), same inputs."""
        row = self.records.row(run_id)
        checkpoints: list[dict[str, Any]] = [
            dict(s) for s in self.ops().list_workflow_steps(run_id)
        ]
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
        checkpoints: list[dict[str, Any]] = [
            dict(c) for c in self.ops().list_workflow_steps(run_id)
        ]
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
        from dbos import SetWorkflowID

        run_id = row.id
        new_id = uuid.uuid4().hex
        self.records.create(
            new_id,
            row.agent_name,
            row.agent_version,
            row.inputs,
            row.principal,
            forked_from=run_id,
        )
        with SetWorkflowID(new_id):
            self.ops().fork_workflow(run_id, function_id)
        data: dict[str, Any] = {"from": run_id, "checkpoint": function_id, "why": by}
        if step is not None:
            data["step"] = step
        self.records.audit("run.fork", "operator", new_id, data)
        return self._read_back(new_id, wait, timeout_s)

    def approve(self, run_id: str, step_id: str, *, approved: bool, by: str, note: str) -> None:
        """Answer a run waiting at an approval step."""
        row = self.records.row(run_id)
        if row.status != "waiting":
            raise ConflictError(
                f"run {run_id} is not waiting for an approval (status {row.status})",
                hint="see `daytwo runs show RUN`",
            )
        self.records.set(run_id, status="running", error=None)
        self.ops().send(
            run_id,
            {"approved": approved, "by": by, "note": note},
            f"approval:{step_id}",
            idempotency_key=f"{run_id}:{step_id}",
        )
        self.records.audit(
            "run.approval", by or "operator", run_id, {"step": step_id, "approved": approved}
        )
