"""Eval targets: agents daytwo did not build, run case by case (``daytwo eval run --target``).

* ``http(s)://host/path`` — an agent behind HTTP. The request body is a JSON template
  whose ``{{input}}`` / ``{{key}}`` placeholders take the case's values (like
  promptfoo's HTTP provider); the answer is read from the JSON response with a
  JSONPath (``$.output``, ``$.choices[0].message.content``). The request carries the
  case's W3C trace context, so the spans the agent exports to daytwo land in the
  case's trace.
* ``module:function`` (or ``python:module:function``) — a Python callable, run by the
  CLI on the operator's machine (never by the server). It gets the case's input text
  (or the :class:`~daytwo.evals.cases.Case` when its parameter is named ``case``) and
  returns a string, a dict with ``output`` (and optionally ``tool_calls``,
  ``retrieved_ids``) or an :class:`~daytwo.evals.runner.AgentResult`.
* ``gateway:MODEL`` — a model behind daytwo's model gateway, called with the official
  ``openai`` SDK (``--url`` of the daytwo server, ``--api-key``).

Targets that run elsewhere set ``trace_wait_s``: after the run, the eval waits that
long at most for the agent's spans before reading tool calls and retrieved documents
from the trace (:mod:`daytwo.evals.trace_components`).
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import httpx
from opentelemetry import propagate

from daytwo._imports import import_attr
from daytwo.evals.cases import Case
from daytwo.evals.runner import AgentResult, AgentRunner
from daytwo.exceptions import InputError

__all__ = ["CallableTarget", "GatewayTarget", "HttpTarget", "resolve_target"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FIELDS = ("input", "key")


def _case_values(case: Case) -> dict[str, str]:
    return {"input": case.input, "key": case.resolved_key()}


def _check_template(node: Any) -> None:
    if isinstance(node, str):
        for name in _PLACEHOLDER.findall(node):
            if name not in _FIELDS:
                raise InputError(
                    f"unknown placeholder {{{{{name}}}}} in the request template",
                    hint="use {{input}} (the case's input) or {{key}} (its key)",
                )
    elif isinstance(node, dict):
        for value in node.values():
            _check_template(value)
    elif isinstance(node, list):
        for value in node:
            _check_template(value)


def _render(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node.strip())
        if whole:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], node)
    if isinstance(node, dict):
        return {k: _render(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, values) for v in node]
    return node


def _jsonpath(expr: str) -> Any:
    from jsonpath_ng.exceptions import JsonPathParserError
    from jsonpath_ng.ext.parser import parse

    try:
        return parse(expr)
    except (JsonPathParserError, Exception) as exc:
        raise InputError(
            f"{expr!r} is not a JSONPath expression ({exc})",
            hint="e.g. $.output or $.choices[0].message.content",
        ) from exc


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class HttpTarget:
    """An agent behind an HTTP endpoint (see the module docstring)."""

    trace_wait_s = 5.0

    def __init__(
        self,
        url: str,
        *,
        request: str | None = None,
        response: str = "$.output",
        tool_calls: str | None = None,
        retrieved_ids: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 120.0,
        version: str = "0",
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise InputError(
                f"{url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8080/ask"
            )
        try:
            self.template: Any = json.loads(request) if request else {"input": "{{input}}"}
        except ValueError as exc:
            raise InputError(
                f"the request template is not JSON ({exc})",
                hint='e.g. --request \'{"question": "{{input}}"}\'',
            ) from exc
        _check_template(self.template)
        self.url = url
        self.response = _jsonpath(response)
        self.response_expr = response
        self.tool_path = _jsonpath(tool_calls) if tool_calls else None
        self.ids_path = _jsonpath(retrieved_ids) if retrieved_ids else None
        self.headers = dict(headers or {})
        self.name = url
        self.version = version
        self._client = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def run(self, case: Case) -> AgentResult:
        """POST the rendered template, read the answer at the JSONPath."""
        started = time.perf_counter()
        headers = dict(self.headers)
        propagate.inject(headers)  # the agent's spans join this case's trace

        def failed(message: str) -> AgentResult:
            return AgentResult(
                output=None, error=message, latency_ms=(time.perf_counter() - started) * 1000
            )

        try:
            resp = self._client.post(
                self.url, json=_render(self.template, _case_values(case)), headers=headers
            )
        except httpx.HTTPError as exc:
            return failed(f"{type(exc).__name__}: {exc}")
        if resp.status_code >= 400:
            return failed(f"HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            data = resp.json()
        except ValueError:
            return failed(f"the response is not JSON: {resp.text[:200]!r}")
        found = self.response.find(data)
        if not found:
            return failed(f"the response has no value at {self.response_expr}: {resp.text[:200]}")
        result = AgentResult(
            output=_text(found[0].value), latency_ms=(time.perf_counter() - started) * 1000
        )
        if self.tool_path is not None:
            calls = [m.value for m in self.tool_path.find(data)]
            if len(calls) == 1 and isinstance(calls[0], list):
                calls = calls[0]
            result.tool_calls = [c for c in calls if isinstance(c, dict)]
        if self.ids_path is not None:
            ids = [m.value for m in self.ids_path.find(data)]
            if len(ids) == 1 and isinstance(ids[0], list):
                ids = ids[0]
            result.retrieved_ids = [str(i) for i in ids]
        return result


class CallableTarget:
    """A Python function as the agent (run in this process, under the case's span)."""

    trace_wait_s = 0.0

    def __init__(self, spec: str, *, version: str = "0") -> None:
        target = spec.removeprefix("python:")
        fn = import_attr(target, what="target", example="--target my_agent:answer")
        if not callable(fn):
            raise InputError(f"{target} is not callable", hint="name a function: module:function")
        params = list(inspect.signature(fn).parameters.values())
        if not params:
            raise InputError(
                f"{target} takes no argument", hint="it must take the case's input text"
            )
        self.fn = fn
        self.wants_case = params[0].name == "case" or params[0].annotation in (Case, "Case")
        self.name = f"python:{target}"
        self.version = version

    def run(self, case: Case) -> AgentResult:
        """Call the function; its exception is the case's error."""
        started = time.perf_counter()
        try:
            out = self.fn(case if self.wants_case else case.input)
        except Exception as exc:
            return AgentResult(
                output=None,
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        elapsed = (time.perf_counter() - started) * 1000
        if isinstance(out, AgentResult):
            out.latency_ms = out.latency_ms or elapsed
            return out
        if isinstance(out, dict):
            return AgentResult(
                output=None if out.get("output") is None else _text(out["output"]),
                tool_calls=list(out.get("tool_calls") or []),
                retrieved_ids=[str(i) for i in out.get("retrieved_ids") or []],
                retrieved_context=[str(t) for t in out.get("retrieved_context") or []],
                latency_ms=elapsed,
            )
        return AgentResult(output=None if out is None else _text(out), latency_ms=elapsed)


class GatewayTarget:
    """A model behind daytwo's model gateway (OpenAI-compatible ``/v1``), one call per case."""

    trace_wait_s = 3.0

    def __init__(
        self,
        model: str,
        *,
        url: str,
        api_key: str,
        system: str | None = None,
        max_tokens: int = 256,
        version: str = "0",
    ) -> None:
        import openai

        from daytwo.sdk import http_client

        if not model:
            raise InputError("gateway: needs a model name", hint="e.g. gateway:local/smollm2-135m")
        if not url.startswith(("http://", "https://")):
            raise InputError(
                "the gateway target needs the daytwo server's URL",
                hint="pass --url http://127.0.0.1:8000 (and --api-key dt_...)",
            )
        self.model = model
        self.system = system
        self.max_tokens = max_tokens
        self._http = http_client(timeout=300)
        self._client = openai.OpenAI(
            base_url=f"{url.rstrip('/')}/v1", api_key=api_key, http_client=self._http
        )
        self.name = f"gateway:{model}"
        self.version = version

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
        self._http.close()

    def run(self, case: Case) -> AgentResult:
        """One chat completion with the case's input as the user message."""
        import openai

        started = time.perf_counter()
        messages: list[Any] = []
        if self.system:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": case.input})
        try:
            reply = self._client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=0.0
            )
        except openai.OpenAIError as exc:
            return AgentResult(
                output=None,
                error=f"{type(exc).__name__}: {exc}",
                latency_ms=(time.perf_counter() - started) * 1000,
            )
        usage = reply.usage
        return AgentResult(
            output=reply.choices[0].message.content if reply.choices else None,
            input_tokens=usage.prompt_tokens if usage else 0,
            output_tokens=usage.completion_tokens if usage else 0,
            latency_ms=(time.perf_counter() - started) * 1000,
        )


def resolve_target(
    spec: str,
    *,
    request: str | None = None,
    response: str | None = None,
    headers: Mapping[str, str] | None = None,
    url: str | None = None,
    api_key: str | None = None,
) -> AgentRunner:
    """The runner a ``--target`` names (see the module docstring)."""
    if spec.startswith(("http://", "https://")):
        return HttpTarget(spec, request=request, response=response or "$.output", headers=headers)
    if spec.startswith("gateway:"):
        if not api_key:
            raise InputError(
                "the gateway target needs an API key", hint="pass --api-key dt_... (role operator)"
            )
        return GatewayTarget(spec.removeprefix("gateway:"), url=url or "", api_key=api_key)
    if ":" in spec:
        return CallableTarget(spec)
    raise InputError(
        f"unknown target {spec!r}",
        hint="use an http(s) URL, module:function, or gateway:MODEL",
    )
