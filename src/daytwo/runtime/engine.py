"""The durable run: one DBOS workflow per run, one DBOS step per agent step.

The workflow walks the agent's DAG in topological order. Every step's result is
checkpointed in DBOS's step table (one write transaction per step, or one per wave of
independent steps, see :func:`~daytwo.runtime.dbos_system.checkpointed_step`); after a
crash the workflow is replayed from the checkpoints (completed steps are not run again)
and continues with the first step that did not complete. Branch decisions are pure
functions of checkpointed outputs, so replays take the same path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any, Protocol

from dbos import DBOS
from opentelemetry import trace

from daytwo.exceptions import DaytwoError, RunFailed
from daytwo.runtime.acting import acting_for
from daytwo.runtime.budget import BudgetMeter
from daytwo.runtime.dbos_system import checkpoint_group, checkpointed_step
from daytwo.runtime.registry import AgentRegistry
from daytwo.runtime.retry import is_infrastructure_fault
from daytwo.runtime.spec import (
    AgentSpec,
    ApprovalStep,
    BranchStep,
    MapStep,
    PlanStep,
    RetryPolicy,
    ToolStep,
)
from daytwo.runtime.steps import (
    Services,
    StepContext,
    call_tool,
    plan_calls,
    record_decision,
    run_step_kind,
)
from daytwo.runtime.templating import evaluate
from daytwo.tracing.propagation import attached, context_carrier

__all__ = ["WORKFLOW_NAME", "RunFailed", "RunHost", "run_agent_workflow", "set_active_runtime"]

WORKFLOW_NAME = "daytwo.run_agent"
_tracer = trace.get_tracer("daytwo.runtime")


class RunHost(Protocol):
    """What the workflow needs of the process's runtime (:class:`~daytwo.runtime.Runtime`).

    The engine depends on this, not on the runtime module: the runtime starts
    workflows, the workflow calls back through these few members.
    """

    @property
    def registry(self) -> AgentRegistry: ...

    @property
    def services(self) -> Services: ...

    def mark_running(self, run_id: str) -> None: ...

    def mark_waiting(self, run_id: str, step_id: str) -> dict[str, Any]: ...

    def audit_step(self, run_id: str, step_id: str, result: dict[str, Any]) -> None: ...

    def finish_run(self, summary: dict[str, Any]) -> dict[str, Any]: ...


_active: RunHost | None = None


def set_active_runtime(runtime: RunHost | None) -> None:
    """Bind the process's runtime (DBOS is a process-wide singleton, and so is this)."""
    global _active
    _active = runtime


def _runtime() -> RunHost:
    if _active is None:
        raise RunFailed("no daytwo runtime is active in this process", hint="Runtime.launch()")
    return _active


@DBOS.workflow(name=WORKFLOW_NAME)
def run_agent_workflow(
    agent_name: str,
    version: int,
    inputs: dict[str, Any],
    principal: str,
    trace_context: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run one agent version on ``inputs``; the run id is the workflow id.

    ``trace_context`` (``context_carrier()`` of the caller, stored with the workflow's
    inputs) makes the run span a child of the initiating query's span, whichever
    worker thread or process runs -- or recovers -- the workflow.
    """
    rt = _runtime()
    run_id = DBOS.workflow_id
    assert run_id is not None
    try:
        spec = rt.registry.spec(agent_name, version)
    except DaytwoError as exc:
        # The version vanished or no longer loads: the run fails with the reason and
        # its row says so (not "queued" forever beside an errored workflow).
        return rt.finish_run(_summary(run_id, "failed", f"the run could not start: {exc}"))
    rt.mark_running(run_id)
    with attached(trace_context), _tracer.start_as_current_span(f"run {agent_name}") as span:
        span.set_attribute("gen_ai.operation.name", "invoke_agent")
        span.set_attribute("gen_ai.agent.name", agent_name)
        span.set_attribute("daytwo.run.id", run_id)
        span.set_attribute("daytwo.agent.name", agent_name)
        span.set_attribute("daytwo.agent.version", version)
        span.set_attribute("daytwo.principal", principal)
        with acting_for(principal, run_id):  # services resolve names inside the run's tenant
            return _Execution(rt, run_id, spec, version, inputs, principal).execute()


def _summary(
    run_id: str,
    status: str,
    error: str | None,
    answer: Any = None,
    outputs: dict[str, Any] | None = None,
    **counts: Any,
) -> dict[str, Any]:
    """The workflow's result, as ``Runtime.finish_run`` records it."""
    return {
        "run_id": run_id,
        "status": status,
        "error": error,
        "answer": answer,
        "outputs": dict(outputs or {}),
        "skipped": counts.get("skipped", []),
        "decisions": counts.get("decisions", []),
        "steps": counts.get("steps", 0),
        "tokens": counts.get("tokens", 0),
        "cost_usd": counts.get("cost_usd", 0.0),
    }


def _timed(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``fn()``'s result with how long it ran (``ms``, the run's own time)."""
    started = time.perf_counter()
    result = fn()
    result.setdefault("ms", round((time.perf_counter() - started) * 1000, 3))
    return result


def _durable(
    name: str, fn: Callable[[], dict[str, Any]], *, grouped: bool = False
) -> dict[str, Any]:
    """``fn()`` as the workflow's next checkpointed step (replayed, not run, on recovery);
    ``grouped``: one of the steps of the wave being checkpointed together."""
    return checkpointed_step(name, fn, grouped=grouped)


class _Execution:
    """One pass over the DAG inside the workflow (replayed deterministically)."""

    def __init__(
        self,
        rt: RunHost,
        run_id: str,
        spec: AgentSpec,
        version: int,
        inputs: dict[str, Any],
        principal: str,
    ) -> None:
        self.rt = rt
        self.run_id = run_id
        self.spec = spec
        self.version = version
        self.principal = principal
        self.outputs: dict[str, Any] = {}
        self.context: dict[str, Any] = {"input": inputs, "steps": self.outputs}
        self.decisions: list[dict[str, Any]] = []
        self.meter = BudgetMeter(spec.budgets)
        self.skipped: set[str] = set()

    def _ctx(self) -> StepContext:
        return StepContext(
            run_id=self.run_id,
            spec=self.spec,
            version=self.version,
            services=self.rt.services,
            context=self.context,
            principal=self.principal,
            latency_budget_ms=min(self.spec.slo.latency_ms, self.meter.remaining_ms()),
            cost_budget_usd=self.meter.remaining_cost(),
        )

    def _step(
        self,
        name: str,
        step: Any,
        exclude: frozenset[str] = frozenset(),
        *,
        grouped: bool = False,
    ) -> dict[str, Any]:
        ctx = self._ctx()
        rt = self.rt
        carrier = context_carrier()  # the run span: the step's spans are its children

        def body() -> dict[str, Any]:
            with attached(carrier):
                result = run_step_kind(ctx, step, exclude)
            rt.audit_step(self.run_id, step.id, result)
            return result

        return _durable(name, body, grouped=grouped)

    def execute(self) -> dict[str, Any]:
        deps, waves = self.spec.run_order()
        try:
            # Steps run one after another in plan order, as they always did; a wave of
            # independent steps is checkpointed as one unit (their rows in one write,
            # see dbos_system), each step with its own row, span, audit record and key.
            for wave in waves:
                grouped = len(wave) > 1
                with checkpoint_group() if grouped else nullcontext():
                    for sid in wave:
                        self._run(sid, deps[sid], grouped)
        except DaytwoError as exc:
            # The run failed (budget, step, approval, a spec expression that does not
            # evaluate): record it with its partial results and end the workflow
            # normally, so DBOS does not log a traceback for a user's budget. The runs
            # table holds the status.
            return self._finish("failed", str(exc))
        answer = self.outputs.get(self.spec.output) if self.spec.output else None
        return self._finish("succeeded", None, answer)

    def _run(self, sid: str, wanted: frozenset[str], grouped: bool) -> None:
        """Run one step of the plan (or skip it: a branch did not take it)."""
        step = self.spec.step(sid)
        if sid in self.skipped or (wanted and wanted <= self.skipped):
            self.skipped.add(sid)
            return
        self.meter.check(before_step=True)
        if isinstance(step, BranchStep):
            self._branch(step)
        elif isinstance(step, ApprovalStep):
            self.outputs[sid] = self._approval(step)
        elif isinstance(step, PlanStep):
            res = self._run_plan(step, frozenset())
            if res["status"] != "ok":
                raise RunFailed(f"plan step {sid!r} failed: {res.get('errors')}")
            self._account(res)
            self.outputs[sid] = res.get("outputs", [])
        else:
            res = self._step(f"step:{sid}", step, grouped=grouped)
            if res["status"] != "ok":
                res = self._replan(step, res)  # its checkpoints write the group's first
            self._account(res)
            self.outputs[sid] = res["output"]
        self.meter.steps += 1
        self.meter.check()

    def _account(self, res: dict[str, Any]) -> None:
        self.meter.add(
            tokens=int(res.get("tokens", 0)),
            cost_usd=res.get("cost_usd", 0.0),
            ms=float(res.get("ms", 0.0)),
        )
        self.decisions.extend(res.get("decisions", []))

    def _finish(self, status: str, error: str | None, answer: Any = None) -> dict[str, Any]:
        summary = _summary(
            self.run_id,
            status,
            error,
            answer,
            self.outputs,
            skipped=sorted(self.skipped),
            decisions=self.decisions,
            steps=self.meter.steps,
            tokens=self.meter.tokens,
            # Exact (no rounding): the ledger's sum for the run, as a JSON number.
            cost_usd=float(self.meter.cost_usd),
        )
        # Not a checkpointed step: the run's end is the workflow's result, which DBOS
        # records right after this returns, and writing it again is harmless (the same
        # values; a cancelled run keeps its cancel). A crash between this write and
        # DBOS's record replays the run from its checkpoints and writes the end again
        # (a second ``run.end`` audit record, the later end time): the window a
        # checkpoint would only move, at the price of two more writes per run.
        return self.rt.finish_run(summary)

    def _branch(self, step: BranchStep) -> None:
        value = evaluate(step.when, self.context)
        taken, other = (step.then, step.otherwise) if value else (step.otherwise, step.then)
        self.skipped.update(t for t in other if t not in taken)
        self.outputs[step.id] = {"value": bool(value), "taken": list(taken)}
        decision: dict[str, Any] = {
            "kind": "branch",
            "summary": f"branch {step.id}: {step.when!r} is {bool(value)}, running "
            f"{', '.join(taken) or 'nothing'}",
            "data": {"when": step.when, "value": bool(value), "taken": list(taken)},
        }
        record_decision(decision["kind"], decision["summary"], decision["data"])
        self.decisions.append(decision)

    def _approval(self, step: ApprovalStep) -> Any:
        rt = self.rt
        run_id = self.run_id
        _durable(f"await:{step.id}", lambda: rt.mark_waiting(run_id, step.id))
        message = DBOS.recv(topic=f"approval:{step.id}", timeout_seconds=step.timeout_s)
        if message is None:
            raise RunFailed(f"approval {step.id!r} timed out after {step.timeout_s:.0f} s")
        if not message.get("approved"):
            raise RunFailed(
                f"approval {step.id!r} rejected by {message.get('by', '?')}: "
                f"{message.get('note', '')}".strip()
            )
        return message

    def _replan(self, step: Any, failed: dict[str, Any]) -> dict[str, Any]:
        """Retries are exhausted: try another tool, the degraded path, then the LLM planner."""
        tried = {failed["tool"]} if failed.get("tool") else set()
        reason = "; ".join(failed.get("errors", [])[:2]) or "failed"
        history = [failed]
        if is_infrastructure_fault(failed.get("error_type")):
            # The store was locked or down through every retry: another tool, the
            # degraded path or a new plan would not fix that, and the tool did nothing
            # wrong. Fail the run saying so instead of moving to a costlier tool.
            last = (failed.get("errors") or ["failed"])[-1]
            self._decide(
                "replan",
                f"step {step.id} not re-planned: the store was unavailable through "
                f"{failed.get('attempts', 0)} tries ({last}), an infrastructure fault, "
                f"not {failed.get('tool') or 'the step'}'s",
                {
                    "step": step.id,
                    "strategy": "none",
                    "reason": last,
                    "infrastructure_fault": failed.get("error_type"),
                },
            )
            self._account(failed)
            raise RunFailed(
                f"step {step.id!r} failed: the store was unavailable ({last})",
                hint="an infrastructure fault, retried; check the database "
                "(DAYTWO_SQLITE_BUSY_TIMEOUT_MS, the server) and resume the run",
            )
        if isinstance(step, ToolStep) and step.capability is not None:
            tools = self.rt.services.tools
            alternatives = [
                t for t in (tools.tools(step.capability) if tools else []) if t not in tried
            ]
            while alternatives:
                self._decide(
                    "replan",
                    f"step {step.id} failed ({reason}); trying another {step.capability} tool",
                    {
                        "step": step.id,
                        "strategy": "alternative_tool",
                        "reason": reason,
                        "failed_tools": sorted(tried),
                        "alternatives": alternatives,
                    },
                )
                res = self._step(f"replan:{step.id}:{len(tried)}", step, frozenset(tried))
                history.append(res)
                if res["status"] == "ok":
                    return self._merge(history, res)
                tried.add(res.get("tool") or alternatives[0])
                reason = "; ".join(res.get("errors", [])[:2]) or "failed"
                alternatives = [t for t in alternatives if t not in tried]
        if step.fallback is not None:
            degraded = self.spec.step(step.fallback)
            self._decide(
                "replan",
                f"step {step.id} failed ({reason}); taking the degraded path {degraded.id}",
                {
                    "step": step.id,
                    "strategy": "degraded_path",
                    "reason": reason,
                    "replacement": degraded.id,
                },
            )
            res = self._step(f"fallback:{step.id}", degraded)
            history.append(res)
            if res["status"] == "ok":
                self.outputs[degraded.id] = res["output"]
                return self._merge(history, res)
        if self.spec.planner and isinstance(step, (ToolStep, MapStep)):
            res = self._planner(step, reason, tried)
            history.append(res)
            if res["status"] == "ok":
                return self._merge(history, res)
        for res in history:
            self._account(res)
        raise RunFailed(
            f"step {step.id!r} failed after retries and re-planning: {reason}",
            hint="see `daytwo runs show RUN` for every attempt",
        )

    def _planner(self, step: Any, reason: str, tried: set[str]) -> dict[str, Any]:
        self._decide(
            "replan",
            f"step {step.id} failed ({reason}); asking the planner for a new plan",
            {"step": step.id, "strategy": "llm_plan", "reason": reason, "avoid": sorted(tried)},
        )
        goal = f"Step {step.id} of agent {self.spec.name} failed: {reason}. Achieve its purpose."
        plan_step = PlanStep(kind="plan", id=step.id, goal=goal)
        return self._run_plan(plan_step, frozenset(tried))

    def _run_plan(self, step: PlanStep, avoid: frozenset[str]) -> dict[str, Any]:
        """Ask for a plan (durable), then run each validated call as its own durable step."""
        ctx = self._ctx()
        plan = _durable(f"plan:{step.id}", lambda: _timed(lambda: plan_calls(ctx, step, avoid)))
        if plan["status"] != "ok":
            return plan
        self._account(plan)
        last: dict[str, Any] = plan
        outputs: list[Any] = []
        for i, call in enumerate(plan["output"]):
            ctx = self._ctx()
            policy = step.retry or self.spec.retry
            tool, args = call["tool"], call["arguments"]

            def body(
                tool: str = tool,
                args: dict[str, Any] = args,
                i: int = i,
                ctx: StepContext = ctx,
                policy: RetryPolicy = policy,
            ) -> dict[str, Any]:
                return _timed(
                    lambda: call_tool(
                        ctx, step.id, tool, args, policy, key_scope=f"{step.id}~plan{i}"
                    )
                )

            last = _durable(f"plan:{step.id}:{i}", body)
            if last["status"] != "ok":
                return last
            outputs.append(last["output"])
            if i < len(plan["output"]) - 1:
                self._account(last)
        return {**last, "outputs": outputs}

    def _merge(self, history: list[dict[str, Any]], final: dict[str, Any]) -> dict[str, Any]:
        for res in history[:-1]:
            self._account(res)
        return final

    def _decide(self, kind: str, summary: str, data: dict[str, Any]) -> None:
        record_decision(kind, summary, data)
        self.decisions.append({"kind": kind, "summary": summary, "data": data})
