"""``observe``: a span around a function or a block, with its input, output, session, user.

Attributes follow OpenInference (``openinference.span.kind``, ``input.value``,
``output.value``, ``session.id``, ``user.id``), which daytwo's OTLP ingest maps onto
the GenAI conventions. Session and user given to an outer ``observe`` apply to the
spans nested in it.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from daytwo.sdk._export import current_connection

__all__ = ["Observation", "current_trace_id", "observe"]

P = ParamSpec("P")
R = TypeVar("R")

MAX_VALUE_CHARS = 32_000
_KINDS = {"chain", "agent", "tool", "retriever", "llm", "embedding", "reranker", "guardrail"}
_SESSION: ContextVar[str | None] = ContextVar("daytwo_sdk_session", default=None)
_USER: ContextVar[str | None] = ContextVar("daytwo_sdk_user", default=None)


def _text(value: Any) -> tuple[str, str]:
    """A value as span text and its MIME type (JSON when it serialises)."""
    if isinstance(value, str):
        return value[:MAX_VALUE_CHARS], "text/plain"
    try:
        text = json.dumps(value, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)[:MAX_VALUE_CHARS], "text/plain"
    return text[:MAX_VALUE_CHARS], "application/json"


def current_trace_id() -> str | None:
    """The current trace id (32 hex digits), or None outside any span."""
    ctx = trace.get_current_span().get_span_context()
    return f"{ctx.trace_id:032x}" if ctx.is_valid else None


class Observation:
    """The span of one ``observe``: set its output, input or attributes; read its ids."""

    def __init__(self, span: Span, capture: bool) -> None:
        self.span = span
        self.capture = capture

    @property
    def trace_id(self) -> str:
        """The trace id (32 hex digits) to pass to :func:`daytwo.sdk.score`."""
        return f"{self.span.get_span_context().trace_id:032x}"

    @property
    def span_id(self) -> str:
        """The span id (16 hex digits)."""
        return f"{self.span.get_span_context().span_id:016x}"

    def set_input(self, value: Any) -> None:
        """Record the input (JSON text when it is not a string)."""
        if self.capture:
            text, mime = _text(value)
            self.span.set_attribute("input.value", text)
            self.span.set_attribute("input.mime_type", mime)

    def set_output(self, value: Any) -> None:
        """Record the output (JSON text when it is not a string)."""
        if self.capture:
            text, mime = _text(value)
            self.span.set_attribute("output.value", text)
            self.span.set_attribute("output.mime_type", mime)

    def set_attribute(self, key: str, value: Any) -> None:
        """Any other span attribute (e.g. ``llm.model_name`` on a ``kind='llm'`` span)."""
        self.span.set_attribute(key, value)


class _Observe:
    """What ``observe(...)`` returns: a decorator and a (sync or async) context manager."""

    def __init__(
        self,
        name: str | None,
        kind: str,
        session: str | None,
        user: str | None,
        capture: bool,
        attributes: dict[str, Any] | None,
    ) -> None:
        if kind.lower() not in _KINDS:
            raise ValueError(f"unknown kind {kind!r}; use one of {', '.join(sorted(_KINDS))}")
        self.name = name
        self.kind = kind.upper()
        self.session = session
        self.user = user
        self.capture = capture
        self.attributes = dict(attributes or {})
        self._stack: list[tuple[Observation, object, Token[Any] | None, Token[Any] | None]] = []

    # -- context manager -------------------------------------------------------------
    def _start(self, name: str) -> Observation:
        span = trace.get_tracer("daytwo.sdk").start_span(name)
        span.set_attribute("openinference.span.kind", self.kind)
        conn = current_connection()
        if conn is not None and conn.service_name:
            span.set_attribute("service.name", conn.service_name)
        session = self.session or _SESSION.get()
        user = self.user or _USER.get()
        if session:
            span.set_attribute("session.id", session)
        if user:
            span.set_attribute("user.id", user)
        for key, value in self.attributes.items():
            span.set_attribute(key, value)
        token = otel_context.attach(trace.set_span_in_context(span))
        s_tok = _SESSION.set(session) if self.session else None
        u_tok = _USER.set(user) if self.user else None
        obs = Observation(span, self.capture)
        self._stack.append((obs, token, s_tok, u_tok))
        return obs

    def _end(self, error: BaseException | None) -> None:
        obs, token, s_tok, u_tok = self._stack.pop()
        if error is not None:
            obs.span.record_exception(error)
            obs.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        obs.span.end()
        if u_tok is not None:
            _USER.reset(u_tok)
        if s_tok is not None:
            _SESSION.reset(s_tok)
        otel_context.detach(token)  # type: ignore[arg-type]

    def __enter__(self) -> Observation:
        return self._start(self.name or "observe")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(error)

    async def __aenter__(self) -> Observation:
        return self.__enter__()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._end(error)

    # -- decorator -------------------------------------------------------------------
    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        name = self.name or getattr(fn, "__qualname__", None) or repr(fn)
        signature = inspect.signature(fn)

        def inputs(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return {"args": args, "kwargs": kwargs}
            return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}

        def child() -> _Observe:
            return _Observe(name, self.kind, self.session, self.user, self.capture, self.attributes)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                async with child() as obs:
                    obs.set_input(inputs(args, kwargs))
                    result = await fn(*args, **kwargs)
                    obs.set_output(result)
                    return result

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with child() as obs:
                obs.set_input(inputs(args, kwargs))
                result = fn(*args, **kwargs)
                obs.set_output(result)
                return result

        return wrapper


@overload
def observe(name: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def observe(
    name: str | None = None,
    /,
    *,
    kind: str = "chain",
    session: str | None = None,
    user: str | None = None,
    capture: bool = True,
    attributes: dict[str, Any] | None = None,
) -> _Observe: ...


def observe(
    name: str | Callable[..., Any] | None = None,
    /,
    *,
    kind: str = "chain",
    session: str | None = None,
    user: str | None = None,
    capture: bool = True,
    attributes: dict[str, Any] | None = None,
) -> Any:
    """A span around a function (``@observe``, ``@observe("name")``) or a block
    (``with observe("name") as obs:``, also ``async with``).

    The decorator records the call's arguments as the input and its return value as
    the output; in a block, call ``obs.set_input``/``obs.set_output``. ``kind`` is the
    OpenInference span kind (chain, agent, tool, retriever, llm, ...); ``session`` and
    ``user`` apply to this span and every span observed inside it. ``capture=False``
    records neither input nor output (sensitive data). An exception marks the span
    failed and propagates.
    """
    if callable(name):
        return _Observe(None, kind, session, user, capture, attributes)(name)
    return _Observe(name, kind, session, user, capture, attributes)
