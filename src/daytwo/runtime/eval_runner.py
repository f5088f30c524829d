"""Run registered agents for the eval layer: the runtime implements evals' ``AgentRunner``.

The eval layer sits below the runtime and only knows the ``AgentRunner`` protocol;
this module binds it to durable runs (one traced DBOS run per case) over the real
layers (``daytwo.runtime.adapters.default_services``: gateway, knowledge, models).
Case inputs are ``{"question": case.input, **case.metadata["inputs"]}``.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from daytwo.evals.cases import Case
from daytwo.evals.runner import AgentResult, AgentRunner

if TYPE_CHECKING:
    from daytwo.runtime.steps import Services
    from daytwo.settings import Settings
    from daytwo.store import Store

__all__ = ["RuntimeRunner", "agent_runner_factory"]


class RuntimeRunner:
    """Runs a registered agent version through the durable runtime, one run per case."""

    def __init__(
        self,
        runtime: Any,
        agent: str,
        version: int | str | None = None,
        *,
        input_key: str = "question",
        principal: str = "eval",
        timeout_s: float = 300.0,
    ) -> None:
        self.runtime = runtime
        self.name = agent
        number = runtime.registry.resolve(agent, version)
        self.number = number
        self.version = str(number)
        self.input_key = input_key
        self.principal = principal
        self.timeout_s = timeout_s

    def run(self, case: Case) -> AgentResult:
        """Start the run, wait for it, and read answer, retrieval, tools and usage back."""
        import time

        inputs = {self.input_key: case.input, **dict(case.metadata.get("inputs") or {})}
        started = time.perf_counter()
        try:
            run = self.runtime.start(
                self.name,
                inputs,
                version=self.number,
                principal=self.principal,
                timeout_s=self.timeout_s,
            )
        except Exception as exc:
            return AgentResult(
                output=None,
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        latency = (time.perf_counter() - started) * 1000
        return self._result(run, inputs, latency)

    def _result(self, run: dict[str, Any], inputs: dict[str, Any], latency: float) -> AgentResult:
        outputs = run.get("outputs") or {}
        answer = outputs.get("answer")
        output: str | None
        if isinstance(answer, dict):
            text = answer.get("answer")
            output = str(text) if text is not None else _json(answer)
        else:
            output = None if answer is None else str(answer)
        steps: dict[str, Any] = outputs.get("steps") or {}
        retrieved_ids: list[str] = []
        context: list[str] = []
        for value in steps.values():
            if isinstance(value, list) and value and all(isinstance(h, dict) for h in value):
                for hit in value:
                    doc = hit.get("doc_id") or hit.get("document_id") or hit.get("id")
                    if doc is not None and "text" in hit:
                        retrieved_ids.append(str(doc))
                        context.append(str(hit["text"]))
        tool_calls = self._tool_calls(run["id"], inputs, steps)
        tokens = int(run.get("tokens") or 0)
        status = run.get("status")
        return AgentResult(
            output=output,
            tool_calls=tool_calls,
            retrieved_ids=retrieved_ids,
            retrieved_context=context,
            input_tokens=tokens,  # the runtime records the total; counted as input here
            cost_usd=float(run.get("cost_usd") or 0.0),
            latency_ms=latency,
            trace_id=run["id"],
            error=None if status == "succeeded" else f"run {status}: {run.get('error')}",
            extra={"run_id": run["id"], "status": status},
        )

    def _tool_calls(
        self, run_id: str, inputs: dict[str, Any], steps: dict[str, Any]
    ) -> list[dict[str, Any]]:
        try:
            from daytwo.runtime.templating import render

            shown = self.runtime.show(run_id, steps=True)
            spec = self.runtime.registry.spec(self.name, self.number)
        except Exception:
            return []
        calls: list[dict[str, Any]] = []
        for cp in shown.get("checkpoints", []):
            tool = cp.get("tool")
            if not tool or cp.get("status") != "ok":
                continue
            step_id = str(cp.get("name", "")).removeprefix("step:")
            args: dict[str, Any] = {}
            try:
                step = spec.step(step_id)
                raw = getattr(step, "arguments", None) or {}
                args = dict(render(raw, {"input": inputs, "steps": steps}))
            except Exception:  # the step's arguments cannot be re-rendered; keep the name
                args = {}
            calls.append({"name": tool, "arguments": args})
        return calls


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def agent_runner_factory(
    settings: Settings,
    store: Store,
    *,
    services: Services | None = None,
    groups: tuple[str, ...] = ("customers",),
) -> Any:
    """A factory ``(name, version, stack) -> RuntimeRunner`` for ``resolve_runner``.

    Cases run as principal ``eval`` searching with ``groups`` (a customer by default):
    a principal without groups is unknown to the knowledge layer and would see nothing.
    """

    def build(name: str, version: str | None, stack: ExitStack) -> AgentRunner:
        from daytwo.runtime.adapters import default_services
        from daytwo.runtime.registry import AgentRegistry
        from daytwo.runtime.runtime import Runtime

        AgentRegistry(store).resolve(name, version)  # unknown agent: fail before loading models
        svc = services
        if svc is None:
            from daytwo.runtime.adapters import KnowledgeRetriever

            svc = default_services(settings, store)
            if isinstance(svc.retriever, KnowledgeRetriever):
                svc.retriever.groups = groups
        runtime = Runtime(store, svc, data_dir=settings.data_dir)
        stack.enter_context(runtime)
        return RuntimeRunner(runtime, name, version)

    return build
