"""What each step kind does, once, inside one durable step (retries included).

Every function returns a JSON-able :class:`StepResult` dict that DBOS
checkpoints: ``status`` (ok / failed), ``output``, ``tokens``, ``cost_usd``,
``tool``, ``attempts``, ``errors``, ``decisions``. A step that fails for good
returns ``status: failed`` rather than raising, so the re-planner's decision is
replayed from the checkpoint after a crash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from opentelemetry import trace

from daytwo.exceptions import SpecError, ToolError
from daytwo.models.prompts import PromptDefinition
from daytwo.runtime.budget import usd
from daytwo.runtime.choice import choose_tool
from daytwo.runtime.protocols import (
    LLM,
    AuditSink,
    LLMResult,
    PromptLLM,
    Retriever,
    TelemetrySource,
    ToolInvoker,
    with_call_deadline,
)
from daytwo.runtime.retry import Attempts, run_with_retries
from daytwo.runtime.spec import (
    AgentSpec,
    LLMStep,
    MapStep,
    PlanStep,
    RetrievalStep,
    RetryPolicy,
    ToolStep,
)
from daytwo.runtime.templating import evaluate, render
from daytwo.tracing.propagation import bind_context

__all__ = [
    "Services",
    "StepContext",
    "idempotency_key",
    "record_decision",
    "render_definition",
    "run_step_kind",
]

_tracer = trace.get_tracer("daytwo.runtime")
T = TypeVar("T")


@dataclass
class Services:
    """The other layers as the runtime sees them (see :mod:`daytwo.runtime.protocols`)."""

    tools: ToolInvoker | None = None
    telemetry: TelemetrySource | None = None
    retriever: Retriever | None = None
    llm: LLM | None = None
    llm_for: Callable[[str], LLM] | None = None
    """A model profile's LLM: how an agent's (or a step's) ``model`` is honoured."""
    audit: AuditSink | None = None


@dataclass
class StepContext:
    """Everything a step needs to run: the run, the spec, the services, the budget left."""

    run_id: str
    spec: AgentSpec
    version: int
    services: Services
    context: dict[str, Any]
    principal: str
    latency_budget_ms: float
    cost_budget_usd: float


def idempotency_key(run_id: str, step_id: str, item: int | None = None) -> str:
    """The key a tool call carries: the same for every attempt and every replay."""
    raw = f"{run_id}:{step_id}" + ("" if item is None else f":{item}")
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def record_decision(kind: str, summary: str, data: dict[str, Any]) -> None:
    """Attach a decision record to the current span (the tracing layer's when present)."""
    try:
        from daytwo.tracing import record_decision as tracing_record
    except Exception:  # the tracing layer is optional here
        pass
    else:
        tracing_record(kind, summary, data)
        return
    trace.get_current_span().add_event(
        "daytwo.decision",
        {
            "daytwo.decision.kind": kind,
            "daytwo.decision.summary": summary,
            "daytwo.decision.data": json.dumps(data, default=str),
        },
    )


def _policy(ctx: StepContext, step: Any) -> RetryPolicy:
    return step.retry if step.retry is not None else ctx.spec.retry


def _result(status: str, output: Any = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "status": status,
        "output": output,
        "tokens": 0,
        "cost_usd": 0.0,
        "attempts": 1,
        "errors": [],
        "decisions": [],
    }
    out.update(extra)
    return out


def _need(service: Any, what: str, kind: str) -> Any:
    if service is None:
        raise ToolError(
            f"a {kind} step needs a {what}, but the runtime has none",
            hint="start the runtime with services that provide it",
        )
    return service


def call_tool(
    ctx: StepContext,
    step_id: str,
    tool: str,
    arguments: dict[str, Any],
    policy: RetryPolicy,
    *,
    key_scope: str | None = None,
) -> dict[str, Any]:
    """One tool call under the retry policy, with its idempotency key and span.

    The key depends on (run, step) only, never on the attempt; a re-planned call
    to another tool scopes it with the tool name (``key_scope``).
    """
    tools: ToolInvoker = _need(ctx.services.tools, "tool invoker", "tool")
    key = idempotency_key(ctx.run_id, key_scope or step_id)
    deadline = time.monotonic() + ctx.latency_budget_ms / 1000
    attempts = Attempts()
    # The gateway opens the call's ``execute_tool`` span (with its cost); the step
    # span around it is a plain step span.
    try:
        outcome = run_with_retries(
            lambda: with_call_deadline(
                deadline,
                lambda: tools.call(tool, arguments, agent=ctx.spec.name, idempotency_key=key),
            ),
            policy,
            attempts,
        )
    except Exception as exc:
        return _result(
            "failed",
            tool=tool,
            attempts=attempts.count,
            errors=attempts.errors,
            error_type=type(exc).__name__,
        )
    noticed: dict[str, Any] = {}
    if outcome.replayed:
        noticed["replayed"] = True  # the stored result of an earlier call: no new effect
    if outcome.flags:
        noticed["flags"] = list(outcome.flags)
    if outcome.alerts:
        noticed["drift_alerts"] = [dataclasses.asdict(a) for a in outcome.alerts]
    return _result(
        "ok",
        outcome.output,
        tool=tool,
        cost_usd=outcome.cost_usd,
        attempts=attempts.count + 1,
        errors=attempts.errors,
        latency_ms=round(outcome.latency_ms, 2),
        **noticed,
    )


def _tool_step(
    ctx: StepContext, step: ToolStep, exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    arguments = render(step.arguments, ctx.context)
    decisions: list[dict[str, Any]] = []
    tool = step.tool
    if step.capability is not None:
        tools: ToolInvoker = _need(ctx.services.tools, "tool invoker", "tool")
        telemetry: TelemetrySource | None = ctx.services.telemetry
        candidates = tools.tools(step.capability)
        if telemetry is None:
            tool = next(t for t in candidates if t not in exclude)
            decisions.append(
                {
                    "kind": "tool_choice",
                    "summary": f"chose {tool} for {step.capability}: no telemetry, first tool",
                    "data": {"chosen": tool, "rule": "no telemetry: first tool"},
                }
            )
        else:
            choice = choose_tool(
                step.capability,
                candidates,
                telemetry,
                latency_budget_ms=ctx.latency_budget_ms,
                cost_budget_usd=ctx.cost_budget_usd,
                max_error_rate=ctx.spec.slo.max_error_rate,
                prefer=step.prefer,
                exclude=exclude,
            )
            tool = choice.tool
            decisions.append(
                {"kind": "tool_choice", "summary": choice.summary, "data": choice.record()}
            )
        for d in decisions:
            record_decision(d["kind"], d["summary"], d["data"])
    assert tool is not None
    scope = f"{step.id}~{tool}" if exclude else None
    result = call_tool(ctx, step.id, tool, arguments, _policy(ctx, step), key_scope=scope)
    result["decisions"] = decisions + result["decisions"]
    return result


def _retrieve_step(ctx: StepContext, step: RetrievalStep) -> dict[str, Any]:
    retriever: Retriever = _need(ctx.services.retriever, "retriever", "retrieve")
    query = str(render(step.query, ctx.context))
    attempts = Attempts()
    # The knowledge layer opens the ``retrieve`` span of each search.
    try:
        hits = run_with_retries(
            lambda: retriever.search(
                step.collection, query, principal=ctx.principal, k=step.k, mode=step.mode
            ),
            _policy(ctx, step),
            attempts,
        )
    except Exception as exc:
        return _result(
            "failed",
            attempts=attempts.count,
            errors=attempts.errors,
            error_type=type(exc).__name__,
        )
    return _result("ok", hits, attempts=attempts.count + 1, errors=attempts.errors)


def _llm_messages(ctx: StepContext, system: str | None, prompt: str) -> list[dict[str, str]]:
    messages = []
    system_text = system if system is not None else ctx.spec.prompts.get("system")
    if system_text:
        messages.append({"role": "system", "content": str(render(system_text, ctx.context))})
    messages.append({"role": "user", "content": prompt})
    return messages


def render_definition(step: LLMStep, context: dict[str, Any] | None) -> PromptDefinition:
    """The step's prompt definition, its templates rendered over ``context`` (a run's
    ``{input, steps}``; None keeps the template text), with the step's schema."""
    if not isinstance(step.prompt, PromptDefinition):
        raise SpecError(
            f"step {step.id!r} has a plain prompt, not a prompt definition",
            hint="give the llm step's prompt as a mapping (intent, instructions, slots...)",
        )
    data = step.prompt.model_dump(exclude_none=True)
    if context is not None:
        data = render(data, context)
    if data.get("output_schema") is None and step.output_schema is not None:
        data["output_schema"] = step.output_schema
    return PromptDefinition.model_validate(data)


def _llm_call(ctx: StepContext, step: LLMStep, llm: LLM) -> Callable[[], LLMResult]:
    if isinstance(step.prompt, PromptDefinition):
        # Compiled for the model the step runs on (its family, tokenizer and window).
        if not isinstance(llm, PromptLLM):
            raise ToolError(
                f"step {step.id!r} has a prompt definition, but the runtime's LLM cannot "
                "compile one",
                hint="use daytwo.runtime.adapters.ModelLLM",
            )
        definition = render_definition(step, ctx.context)
        prompt_llm = llm
        return lambda: prompt_llm.complete_prompt(definition, max_tokens=step.max_tokens)
    messages = _llm_messages(ctx, step.system, str(render(step.prompt, ctx.context)))
    return lambda: llm.complete(messages, schema=step.output_schema, max_tokens=step.max_tokens)


def _llm(ctx: StepContext, step_model: str | None, kind: str = "llm") -> LLM:
    """The LLM of the step's model, else the agent's, else the services' default one."""
    name = step_model or ctx.spec.model
    if name and ctx.services.llm_for is not None:
        return ctx.services.llm_for(name)
    llm: LLM = _need(ctx.services.llm, "LLM", kind)
    return llm


def _llm_step(ctx: StepContext, step: LLMStep) -> dict[str, Any]:
    llm = _llm(ctx, step.model)
    call = _llm_call(ctx, step, llm)
    attempts = Attempts()
    # Invalid structured output is repaired by the LLM's own ladder; it is retried
    # here only when the spec lists StructuredOutputError in retry_on.
    policy = _policy(ctx, step)
    # The models layer opens one ``chat`` span per model call (with its usage); the
    # step span around them is a plain step span.
    # Failed tries that reached the model were paid for: ``attempts`` counts them.
    try:
        res = run_with_retries(call, policy, attempts)
    except Exception as exc:
        return _result(
            "failed",
            tokens=attempts.tokens,
            cost_usd=float(attempts.cost_usd),
            attempts=attempts.count,
            errors=attempts.errors,
            error_type=type(exc).__name__,
        )
    output = res.data if step.output_schema is not None else res.text
    return _result(
        "ok",
        output,
        tokens=res.usage.total_tokens + attempts.tokens,
        cost_usd=float(usd(res.cost_usd) + attempts.cost_usd),
        attempts=attempts.count + 1,
        errors=attempts.errors,
    )


_ITEM_THREADS = 64
_item_pool: ThreadPoolExecutor | None = None
_item_pool_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """The process's threads for map items, started as needed and kept: a pool per map
    step cost more than its ten no-op items (a thread start each)."""
    global _item_pool
    with _item_pool_lock:
        if _item_pool is None:
            _item_pool = ThreadPoolExecutor(_ITEM_THREADS, thread_name_prefix="daytwo-map")
        return _item_pool


def _bounded(fn: Callable[[int, Any], T], items: list[Any], limit: int) -> list[T]:
    """``fn(i, item)`` for every item, at most ``limit`` at a time, results in order.

    Items never wait for each other, so sharing the pool cannot deadlock; a map of
    one item, or of concurrency 1, runs in the caller's thread.
    """
    if limit <= 1 or len(items) <= 1:
        return [fn(i, item) for i, item in enumerate(items)]
    pool = _pool()
    results: list[Any] = [None] * len(items)
    queued = iter(enumerate(items))
    running = {pool.submit(fn, i, item): i for i, item in itertools.islice(queued, limit)}
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            results[running.pop(future)] = future.result()
            following = next(queued, None)
            if following is not None:
                running[pool.submit(fn, *following)] = following[0]
    return results


def _map_step(ctx: StepContext, step: MapStep) -> dict[str, Any]:
    items = evaluate(step.items, ctx.context)
    if not isinstance(items, list):
        return _result("failed", errors=[f"items {step.items!r} is not a list: {items!r}"[:300]])
    policy = _policy(ctx, step)
    tools: ToolInvoker = _need(ctx.services.tools, "tool invoker", "map")
    deadline = time.monotonic() + ctx.latency_budget_ms / 1000

    def one(index: int, item: Any) -> dict[str, Any]:
        args = render(step.arguments, {**ctx.context, "item": item})
        key = idempotency_key(ctx.run_id, step.id, index)
        attempts = Attempts()
        try:
            outcome = run_with_retries(
                lambda: with_call_deadline(
                    deadline,
                    lambda: tools.call(step.tool, args, agent=ctx.spec.name, idempotency_key=key),
                ),
                policy,
                attempts,
            )
        except Exception:
            return {"ok": False, "error": attempts.errors[-1] if attempts.errors else "failed"}
        return {"ok": True, "output": outcome.output, "cost_usd": outcome.cost_usd}

    # The items run concurrently and are checkpointed together, as one durable step:
    # a crash mid-map re-runs the map, and the per-item idempotency keys keep the
    # tools' side effects exactly-once. bind_context: the items' tool calls stay in
    # this step's trace.
    rows = _bounded(bind_context(one), items, step.concurrency)
    ok = [r for r in rows if r["ok"]]
    cost = float(sum((usd(r.get("cost_usd", 0.0)) for r in ok), Decimal(0)))
    errors = [f"item {i}: {r['error']}" for i, r in enumerate(rows) if not r["ok"]]
    if step.join == "all":
        if errors:
            return _result("failed", errors=errors, cost_usd=cost)
        output: Any = [r["output"] for r in rows]
    elif step.join == "quorum":
        assert step.quorum is not None
        if len(ok) < step.quorum:
            return _result(
                "failed",
                errors=[f"{len(ok)} successes < quorum {step.quorum}", *errors],
                cost_usd=cost,
            )
        output = [r["output"] for r in ok]
    else:
        output = [r["output"] for r in ok]
    return _result("ok", output, cost_usd=cost, errors=errors, items=len(items))


def plan_calls(
    ctx: StepContext, step: PlanStep, avoid: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Planner mode: ask the LLM for tool calls; validate them before anything runs."""
    llm = _llm(ctx, None, "plan")
    tools: ToolInvoker = _need(ctx.services.tools, "tool invoker", "plan")
    allowed = [t for t in (step.tools or tuple(tools.tools())) if t not in avoid]
    schema = {
        "type": "object",
        "properties": {
            "calls": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"tool": {"type": "string"}, "arguments": {"type": "object"}},
                    "required": ["tool", "arguments"],
                },
            }
        },
        "required": ["calls"],
    }
    goal = str(render(step.goal, ctx.context))
    prompt = (
        f"Goal: {goal}\nTools you may call: {', '.join(allowed)}\n"
        f"Propose at most {step.max_calls} tool calls as JSON."
    )
    attempts = Attempts()
    try:
        res = llm.complete(_llm_messages(ctx, None, prompt), schema=schema, max_tokens=256)
    except Exception as exc:
        attempts.failed(exc)  # an answer that was no valid plan was still paid for
        return _result(
            "failed",
            errors=attempts.errors,
            tokens=attempts.tokens,
            cost_usd=float(attempts.cost_usd),
        )
    calls = res.data["calls"] if isinstance(res.data, dict) else []
    problems = [c["tool"] for c in calls if c["tool"] not in allowed]
    telemetry = ctx.services.telemetry
    est_cost = sum(telemetry.snapshot(c["tool"]).cost_usd for c in calls) if telemetry else 0.0
    if problems:
        verdict = f"rejected: unknown or disallowed tools {problems}"
    elif len(calls) > step.max_calls:
        verdict = f"rejected: {len(calls)} calls > max_calls {step.max_calls}"
    elif est_cost > ctx.cost_budget_usd:
        verdict = f"rejected: estimated cost ${est_cost:.4f} over the budget left"
    else:
        verdict = "accepted"
    decision: dict[str, Any] = {
        "kind": "replan" if avoid else "plan",
        "summary": f"LLM plan of {len(calls)} tool calls {verdict}",
        "data": {"calls": calls, "verdict": verdict, "allowed": allowed, "est_cost_usd": est_cost},
    }
    record_decision(decision["kind"], decision["summary"], decision["data"])
    tokens = res.usage.total_tokens
    if verdict != "accepted":
        # The rejected plan's model call was paid for all the same.
        return _result(
            "failed", errors=[verdict], tokens=tokens, cost_usd=res.cost_usd, decisions=[decision]
        )
    return _result("ok", calls, tokens=tokens, cost_usd=res.cost_usd, decisions=[decision])


def run_step_kind(
    ctx: StepContext, step: Any, exclude: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Run one retrieve / llm / tool / map step (plan steps go through the engine)."""
    started = time.perf_counter()
    with _tracer.start_as_current_span(f"step {step.id}") as span:
        span.set_attribute("daytwo.run.id", ctx.run_id)
        span.set_attribute("daytwo.step.id", step.id)
        span.set_attribute("daytwo.step.kind", step.kind)
        span.set_attribute("daytwo.agent.name", ctx.spec.name)
        span.set_attribute("daytwo.agent.version", ctx.version)
        if isinstance(step, ToolStep):
            result = _tool_step(ctx, step, exclude)
        elif isinstance(step, RetrievalStep):
            result = _retrieve_step(ctx, step)
        elif isinstance(step, LLMStep):
            result = _llm_step(ctx, step)
        elif isinstance(step, MapStep):
            result = _map_step(ctx, step)
        elif isinstance(step, PlanStep):
            result = plan_calls(ctx, step)
        else:  # pragma: no cover - the engine handles branch/approval itself
            raise TypeError(f"step kind {step.kind} is not run here")
        span.set_attribute("daytwo.step.status", result["status"])
    result["ms"] = round((time.perf_counter() - started) * 1000, 3)
    return result
