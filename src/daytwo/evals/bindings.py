"""Bind the eval machinery to the rest of daytwo: models, the durable runtime, agent references.

Agent references (``--agent``):

* ``NAME[@VERSION]`` — an agent registered in the runtime (``daytwo.runtime``);
  each case is one traced, durable run. Case inputs are
  ``{"question": case.input, **case.metadata["inputs"]}``.
* ``model:local[@LABEL]`` or ``model:http://host/v1[@LABEL]`` — the bare model as agent
  (one chat call per case), e.g. to compare models before wiring them in.
* ``python:package.module:attr[@LABEL]`` — an ``AgentRunner`` object, a factory
  returning one, or a function ``case -> str | AgentResult``.
"""

from __future__ import annotations

import importlib
from contextlib import ExitStack
from typing import Any

from daytwo.evals.cases import Case
from daytwo.evals.runner import AgentResult, AgentRunner, CallableRunner, ModelAgentRunner
from daytwo.exceptions import InputError, NotFoundError

__all__ = ["RuntimeRunner", "open_chat_model", "parse_agent_ref", "resolve_runner"]


def parse_agent_ref(ref: str) -> tuple[str, str | None]:
    """``name@version`` → (name, version); the version is what follows the last ``@``."""
    name, sep, version = ref.rpartition("@")
    if not sep:
        return ref, None
    if not name or not version:
        raise InputError(
            f"agent reference {ref!r} is incomplete", hint="write NAME or NAME@VERSION"
        )
    return name, version


def open_chat_model(spec: str, stack: ExitStack, *, settings: Any = None) -> tuple[Any, str]:
    """A chat model for judges and synthesis: ``local`` (SmolLM2) or an OpenAI-compatible URL."""
    from daytwo.models.openai_compat import OpenAICompatProvider

    if spec == "local":
        from daytwo.models.local import LocalModelServer, LocalModelSettings

        local = LocalModelSettings(
            model_path=getattr(settings, "local_model_path", None),
            n_ctx=getattr(settings, "local_model_ctx", 4096),
            threads=getattr(settings, "local_model_threads", 2),
        )
        server = stack.enter_context(LocalModelServer(local))
        provider = OpenAICompatProvider(server.base_url, model="smollm2", timeout=300)
        stack.callback(provider.close)
        return provider, "local/smollm2-135m"
    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        provider = OpenAICompatProvider(url, model=model or "default")
        stack.callback(provider.close)
        return provider, f"{url}#{model or 'default'}"
    raise InputError(
        f"unknown model {spec!r}",
        hint="use 'local' or an OpenAI-compatible base URL such as http://127.0.0.1:8000/v1#model",
    )


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


def _python_runner(target: str, label: str | None) -> AgentRunner:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise InputError(
            f"python agent {target!r} must look like package.module:attr",
            hint="e.g. --agent python:my_agents:support@2",
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotFoundError(
            f"cannot import {module_name!r}: {exc}", hint="check PYTHONPATH"
        ) from exc
    obj = getattr(module, attr, None)
    if obj is None:
        raise NotFoundError(f"{module_name} has no attribute {attr!r}")
    if isinstance(obj, AgentRunner):
        return obj
    if isinstance(obj, type) or getattr(obj, "__daytwo_factory__", False):
        made = obj()
        if isinstance(made, AgentRunner):
            return made
    if callable(obj):
        return CallableRunner(obj, name=f"python:{target}", version=label or "0")
    raise InputError(f"{target} is not an agent runner, factory or function")


def resolve_runner(
    ref: str,
    stack: ExitStack,
    *,
    settings: Any = None,
    store: Any = None,
    services: Any = None,
) -> AgentRunner:
    """The runner an ``--agent`` reference names (see the module docstring)."""
    name, version = parse_agent_ref(ref)
    if name.startswith("python:"):
        return _python_runner(name.removeprefix("python:"), version)
    if name.startswith("model:"):
        model, label = open_chat_model(name.removeprefix("model:"), stack, settings=settings)
        return ModelAgentRunner(model, name=name, version=version or label)
    try:
        from daytwo.runtime.runtime import Runtime
    except ImportError as exc:  # pragma: no cover - the runtime ships with daytwo
        raise NotFoundError(
            f"agent {name!r} needs the runtime layer, which is not installed",
            hint="use --agent model:local or python:module:attr",
        ) from exc
    if store is None:
        raise InputError("running a runtime agent needs the store")
    from daytwo.runtime.registry import AgentRegistry

    AgentRegistry(store).resolve(name, version)  # unknown agent: fail before loading models
    if services is None:
        services = default_services(stack, settings)
    data_dir = getattr(settings, "data_dir", None)
    runtime = Runtime(store, services, **({"data_dir": data_dir} if data_dir else {}))
    stack.enter_context(runtime)
    return RuntimeRunner(runtime, name, version)


def default_services(stack: ExitStack, settings: Any = None) -> Any:
    """Runtime services on the embedded defaults: the local LLM and the sample gateway tools.

    The knowledge retriever is added when the knowledge layer offers one
    (``daytwo.knowledge.runtime_retriever``); without it retrieve steps fail
    and the run is scored as such.
    """
    from daytwo.runtime import OpenAICompatLLM
    from daytwo.runtime.steps import Services

    model, _label = open_chat_model("local", stack, settings=settings)
    llm = OpenAICompatLLM(model.base_url, model="smollm2")
    stack.callback(llm.close)
    services = Services(llm=llm)
    try:
        from daytwo.gateway import samples
        from daytwo.runtime import PythonTools

        tools = PythonTools()
        tools.add("orders_status_cached", samples.orders_status_cached, capability="orders.status")
        tools.add("orders_status_live", samples.orders_status_live, capability="orders.status")
        services.tools = tools
    except Exception:  # the gateway samples are optional here
        pass
    try:
        from daytwo import knowledge

        factory = getattr(knowledge, "runtime_retriever", None)
        if factory is not None:
            services.retriever = factory(settings)
    except Exception:
        pass
    return services
