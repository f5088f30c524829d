"""Tool backends: a Python callable, an HTTP endpoint (httpx), a tool on an MCP server.

Each backend turns the validated arguments into the backend's raw JSON answer
(a dict), or raises :class:`BackendError` (timeout, HTTP error, non-JSON).
Credentials come from the vault at call time and never leave the request.
"""

from __future__ import annotations

import email.utils
import importlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from daytwo.exceptions import (
    BackendError,
    BackendTimeout,
    DatabaseLocked,
    DatabaseUnavailable,
    InputError,
    NotFoundError,
)
from daytwo.gateway.contracts import HttpAuth, HttpBackendSpec, McpBackendSpec, PythonBackendSpec
from daytwo.tracing.propagation import context_carrier, inject_context

if TYPE_CHECKING:
    from daytwo.gateway.egress import EgressPolicy
    from daytwo.gateway.vault import CredentialVault, OAuth2TokenCache

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MCP_IDEMPOTENCY_META",
    "Backend",
    "HttpBackend",
    "McpBackend",
    "McpSessions",
    "PythonBackend",
    "parse_retry_after",
    "resolve_callable",
]

log = logging.getLogger("daytwo.gateway.backends")

_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}

#: The header an HTTP backend gets the gateway's idempotency key of the call in
#: (the IETF httpapi draft's name, the one Stripe and others use).
IDEMPOTENCY_HEADER = "Idempotency-Key"
#: The key in an MCP request's ``_meta`` that carries it (MCP defines no standard one;
#: a prefixed key, as the spec asks of non-MCP ``_meta`` keys).
MCP_IDEMPOTENCY_META = "daytwo/idempotency_key"


class Backend(Protocol):
    """What the gateway calls; ``idempotency_key`` is the gateway's key of the call."""

    def call(
        self,
        arguments: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Any: ...


def resolve_callable(ref: str, registry: dict[str, Callable[..., Any]]) -> Callable[..., Any]:
    """A registered callable by name, or ``module:function`` imported."""
    fn = registry.get(ref)
    if fn is not None:
        return fn
    if ":" not in ref:
        raise NotFoundError(
            f"no Python callable registered as {ref!r}",
            hint="call gateway.register_python(name, fn) or use 'module:function'",
        )
    module_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise NotFoundError(
            f"cannot import the tool callable {ref!r}: {exc}", hint="check the module:function path"
        ) from exc
    if not callable(obj):
        raise InputError(f"{ref!r} is not callable", hint="point at a function")
    return obj  # type: ignore[no-any-return]


class PythonBackend:
    """Calls ``fn(**arguments)`` in-process."""

    def __init__(self, spec: PythonBackendSpec, registry: dict[str, Callable[..., Any]]) -> None:
        self.fn = resolve_callable(spec.callable, registry)

    def call(
        self,
        arguments: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Any:
        try:
            return self.fn(**arguments)
        except (BackendError, InputError):
            raise
        except (DatabaseLocked, DatabaseUnavailable):
            # The store the function uses is busy or down: an infrastructure fault, not
            # the tool's. It stays itself so the gateway does not count it against the
            # tool's health and the runtime retries it rather than re-planning.
            raise
        except Exception as exc:
            raise BackendError(
                f"the tool function failed: {type(exc).__name__}: {exc}",
                hint="see the backend's logs; the call was not retried",
            ) from exc


class _Retryable(Exception):
    """A failed attempt worth another; ``refused``: the backend said it did not handle it."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.refused = refused


def parse_retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` value asks to wait (delta-seconds or an HTTP-date).

    ``None`` for a missing or unreadable value; a date in the past is 0.
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _auth_headers(
    auth: HttpAuth | None,
    vault: CredentialVault | None,
    tokens: OAuth2TokenCache,
    guard: EgressPolicy,
    client: httpx.Client | None = None,
) -> dict[str, str]:
    if auth is None:
        return {}
    if vault is None:
        raise InputError(
            "this tool needs the credential vault", hint="create the Gateway with a vault"
        )
    if auth.type == "bearer":
        return {"Authorization": f"Bearer {vault.get(auth.secret or '')}"}
    if auth.type == "header":
        return {auth.header: vault.get(auth.secret or "")}
    if not (auth.token_url and auth.client_id and auth.client_secret):
        raise InputError(
            "oauth2_client_credentials needs token_url, client_id and client_secret",
            hint="complete the backend's auth section",
        )
    guard.check_static(auth.token_url)
    token = tokens.token(
        auth.token_url, auth.client_id, vault.get(auth.client_secret), auth.scope, client=client
    )
    return {"Authorization": f"Bearer {token}"}


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BackendError(
            f"{where} answered non-JSON: {text[:60]!r}",
            hint="fix the backend or put an adapter in front of it",
        ) from exc


def _redact(text: str, secrets: list[str]) -> str:
    """``text`` with every credential value replaced (a backend may echo what it got)."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


class HttpBackend:
    """An HTTP endpoint: SSRF-checked URL, timeouts, retries, the call's idempotency key.

    Idempotent methods are retried on 5xx, 429 and connection errors; other methods
    only on 429/503 (the backend refused the request) and only when the call carries
    an idempotency key, which the backend gets in ``Idempotency-Key`` and can
    deduplicate on. A ``Retry-After`` on 429/503 is waited out, up to
    ``max_retry_wait_s``; a longer one fails the call at once. An OAuth2 token the
    backend answers 401 to is refreshed once and the request sent again.
    """

    def __init__(
        self,
        spec: HttpBackendSpec,
        *,
        guard: EgressPolicy,
        vault: CredentialVault | None,
        tokens: OAuth2TokenCache,
        client: httpx.Client,
        max_retry_wait_s: float = 30.0,
    ) -> None:
        self.spec = spec
        self.guard = guard
        self.vault = vault
        self.tokens = tokens
        self.client = client
        self.max_retry_wait_s = max_retry_wait_s
        self._backoff = wait_exponential(multiplier=0.05, max=1.0)

    def _request(
        self, arguments: dict[str, Any], idempotency_key: str | None
    ) -> tuple[httpx.Request, list[str]]:
        spec = self.spec
        url = spec.url
        query: dict[str, Any] = {}
        # W3C traceparent of the current (execute_tool) span: the backend's spans join
        # the initiating query's trace. Argument headers and credentials come after.
        headers: dict[str, str] = dict(inject_context({}))
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        body: dict[str, Any] = {}
        for name, value in arguments.items():
            where = spec.params.get(
                name, "query" if spec.method in {"GET", "HEAD", "DELETE"} else "body"
            )
            if where == "path":
                url = url.replace("{" + name + "}", quote(str(value), safe=""))
            elif where == "query":
                query[name] = value if not isinstance(value, (dict, list)) else json.dumps(value)
            elif where == "header":
                headers[name] = str(value)
            else:
                body[name] = value
        # The client connects only to addresses the policy allows (one resolution,
        # checked and pinned); here what needs no network: scheme, literal address.
        self.guard.check_static(url)
        auth = _auth_headers(spec.auth, self.vault, self.tokens, self.guard, self.client)
        headers.update(auth)
        secrets = [v.split(" ", 1)[-1] for v in auth.values()]
        return self.client.build_request(
            spec.method,
            url,
            params=query or None,
            headers=headers,
            json=body if body or spec.method in {"POST", "PUT", "PATCH"} else None,
            timeout=spec.timeout_s,
        ), secrets

    def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return self.client.send(request)
        except httpx.TimeoutException as exc:
            raise BackendTimeout(
                f"the backend {self.spec.method} {self.spec.url} timed out after "
                f"{self.spec.timeout_s} s",
                hint="raise backend.timeout_s or check the backend",
            ) from exc
        except httpx.HTTPError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc

    def _drop_rejected_token(self, request: httpx.Request) -> bool:
        """Forget the OAuth2 token the backend rejected; False when there is none."""
        auth = self.spec.auth
        if auth is None or auth.type != "oauth2_client_credentials" or self.vault is None:
            return False
        if not (auth.token_url and auth.client_id and auth.client_secret):
            return False
        rejected = request.headers.get("authorization", "").split(" ", 1)[-1]
        self.tokens.invalidate(
            auth.token_url, auth.client_id, self.vault.get(auth.client_secret), auth.scope, rejected
        )
        return True

    def _send_once(
        self,
        arguments: dict[str, Any],
        secrets: list[str],
        idempotency_key: str | None,
        deadline: float | None = None,
    ) -> httpx.Response:
        request, fresh = self._request(arguments, idempotency_key)
        secrets.extend(fresh)
        resp = self._send(request)
        if resp.status_code == 401 and self._drop_rejected_token(request):
            # The token expired or was revoked before its expires_in: one fresh token.
            log.info("%s answered 401: refreshing the OAuth2 token once", self.spec.url)
            request, fresh = self._request(arguments, idempotency_key)
            secrets.extend(fresh)
            resp = self._send(request)
        status = resp.status_code
        if status >= 500 or status == 429:
            refused = status in (429, 503)
            wait = parse_retry_after(resp.headers.get("retry-after")) if refused else None
            if wait is not None and wait > self.max_retry_wait_s:
                raise BackendError(
                    f"the backend {self.spec.method} {self.spec.url} answered HTTP {status} "
                    f"and asked to be retried after {wait:.0f} s, longer than the "
                    f"{self.max_retry_wait_s:g} s the gateway waits",
                    hint="retry the call later (or raise the gateway's retry_after_max_s)",
                    status=status,
                    retry_after_s=round(wait, 3),
                )
            left = deadline - time.monotonic() if deadline is not None else None
            if wait is not None and left is not None and wait > left:
                raise BackendError(
                    f"the backend {self.spec.method} {self.spec.url} answered HTTP {status} "
                    f"and asked to be retried after {wait:.1f} s, more than the "
                    f"{max(left, 0.0):.1f} s left of the step's latency budget",
                    hint="retry the run later, or raise the agent's slo.latency_ms",
                    status=status,
                    retry_after_s=round(wait, 3),
                )
            raise _Retryable(f"HTTP {status}", retry_after=wait, refused=refused)
        return resp

    def call(
        self,
        arguments: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Any:
        """``deadline`` (``time.monotonic()``): no Retry-After is waited out past it."""
        secrets: list[str] = []
        try:
            return self._call(arguments, secrets, idempotency_key, deadline)
        except BackendError as exc:
            redacted = _redact(exc.message, secrets)
            if redacted == exc.message:
                raise
            raise type(exc)(redacted, hint=exc.hint, **exc.context) from None

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return exc.retry_after  # what the backend asked (already capped)
        return float(self._backoff(state))

    def _call(
        self,
        arguments: dict[str, Any],
        secrets: list[str],
        idempotency_key: str | None,
        deadline: float | None = None,
    ) -> Any:
        idempotent = self.spec.method in _IDEMPOTENT
        keyed = idempotency_key is not None

        def worth_another(exc: BaseException) -> bool:
            return isinstance(exc, _Retryable) and (idempotent or (keyed and exc.refused))

        attempts = 1 + (self.spec.retries if idempotent or keyed else 0)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(attempts),
                wait=self._wait,
                retry=retry_if_exception(worth_another),
                reraise=False,
            ):
                with attempt:
                    resp = self._send_once(arguments, secrets, idempotency_key, deadline)
        except (RetryError, _Retryable) as exc:
            if isinstance(exc, RetryError):
                cause = exc.last_attempt.exception()
                made = exc.last_attempt.attempt_number
            else:
                cause, made = exc, 1
            raise BackendError(
                f"the backend {self.spec.method} {self.spec.url} failed after {made} "
                f"attempt(s): {cause}",
                hint="check the backend; non-idempotent methods are retried only on "
                "429/503 with an idempotency key",
                attempts=made,
            ) from cause
        if resp.status_code >= 400:
            raise BackendError(
                f"the backend answered HTTP {resp.status_code}: {resp.text[:80]!r}",
                hint="check the arguments and the backend's credentials",
                status=resp.status_code,
            )
        return _parse_json(resp.text, f"the backend {self.spec.method} {self.spec.url}")


class _StdioSession:
    """One stdio MCP server process and its client session, kept up between calls."""

    def __init__(self, command: list[str], timeout_s: float) -> None:
        self.command = list(command)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._live: tuple[Any, Any, Any, Any] | None = None

    def _connect(self) -> tuple[Any, Any, Any, Any]:
        from anyio.from_thread import start_blocking_portal
        from mcp.client import Client
        from mcp.client.stdio import StdioServerParameters

        with self._lock:
            if self._live is None:
                params = StdioServerParameters(command=self.command[0], args=self.command[1:])
                portal_cm = start_blocking_portal()
                portal = portal_cm.__enter__()
                try:
                    client_cm = portal.wrap_async_context_manager(
                        Client(params, read_timeout_seconds=self.timeout_s, mode="legacy")
                    )
                    client = client_cm.__enter__()
                except BaseException:
                    portal_cm.__exit__(None, None, None)
                    raise
                self._live = (portal_cm, portal, client_cm, client)
            return self._live

    def call(
        self, tool: str, arguments: dict[str, Any], meta: dict[str, str], timeout_s: float
    ) -> Any:
        """Call ``tool``; calls of several threads share the session concurrently."""
        import anyio

        live = self._connect()
        _, portal, _, client = live

        async def one() -> Any:
            with anyio.fail_after(timeout_s):
                return await client.call_tool(
                    tool, arguments, read_timeout_seconds=timeout_s, meta=meta or None
                )

        try:
            return portal.call(one)
        except BaseException:
            # A dead or wedged server: the next call starts a new one.
            self._disconnect(live)
            raise

    def _disconnect(self, live: tuple[Any, Any, Any, Any] | None = None) -> None:
        with self._lock:
            if self._live is None or (live is not None and self._live is not live):
                return  # already replaced by another thread
            session, self._live = self._live, None
        portal_cm, _, client_cm, _ = session
        try:
            client_cm.__exit__(None, None, None)
        except Exception:  # the server may already be gone
            log.debug("closing the MCP session failed", exc_info=True)
        finally:
            portal_cm.__exit__(None, None, None)

    def close(self) -> None:
        """Stop the server process, if one is running."""
        self._disconnect()


class McpSessions:
    """Live stdio MCP sessions, one per server command, shared by every tool it serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[tuple[str, ...], _StdioSession] = {}

    def session(self, command: list[str], timeout_s: float) -> _StdioSession:
        """The session of the server ``command`` runs (started on its first call)."""
        with self._lock:
            key = tuple(command)
            found = self._sessions.get(key)
            if found is None:
                found = self._sessions[key] = _StdioSession(command, timeout_s)
            return found

    def close(self) -> None:
        """Stop every server process."""
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            session.close()


def _wants_text(output_schema: dict[str, Any] | None) -> bool:
    props = (output_schema or {}).get("properties")
    return isinstance(props, dict) and "text" in props


class McpBackend:
    """A tool on an external MCP server (stdio command or Streamable HTTP URL).

    stdio servers run once per command, shared by the tools they serve (``sessions``);
    an HTTP server gets one session per call, so fresh credentials go with each.
    A tool answering only text is usable: text that is a JSON object is the
    output (unless the output schema declares a ``text`` field and the object has
    none), any other text is ``{"text": ...}``.
    """

    def __init__(
        self,
        spec: McpBackendSpec,
        *,
        guard: EgressPolicy,
        vault: CredentialVault | None,
        tokens: OAuth2TokenCache,
        client: httpx.Client | None = None,
        sessions: McpSessions | None = None,
        output_schema: dict[str, Any] | None = None,
    ) -> None:
        if bool(spec.command) == bool(spec.url):
            raise InputError(
                "an mcp backend needs exactly one of command (stdio) or url (Streamable HTTP)",
                hint="set backend.command or backend.url",
            )
        self.spec = spec
        self.guard = guard
        self.vault = vault
        self.tokens = tokens
        self.client = client
        self._own_sessions = sessions is None
        self.sessions = sessions if sessions is not None else McpSessions()
        self.output_schema = output_schema

    def _target(self) -> Any:
        from mcp.client.stdio import StdioServerParameters
        from mcp.client.streamable_http import streamable_http_client

        spec = self.spec
        if spec.command:
            return StdioServerParameters(command=spec.command[0], args=list(spec.command[1:]))
        assert spec.url is not None
        from daytwo.gateway.egress import pinned_async_client

        self.guard.check_static(spec.url)
        headers = {
            **inject_context({}),  # traceparent: the server's spans join this trace
            **_auth_headers(spec.auth, self.vault, self.tokens, self.guard, self.client),
        }
        http = pinned_async_client(self.guard, headers=headers, timeout=spec.timeout_s)
        return streamable_http_client(spec.url, http_client=http)

    def _client(self) -> Any:
        from mcp.client import Client

        return Client(self._target(), read_timeout_seconds=self.spec.timeout_s, mode="legacy")

    def _result(self, result: Any) -> Any:
        spec = self.spec
        if getattr(result, "is_error", False):
            text = " ".join(getattr(c, "text", "") for c in result.content)
            raise BackendError(
                f"the MCP tool {spec.tool!r} returned an error: {text[:120]}",
                hint="check the arguments and the MCP server",
            )
        if result.structured_content is not None:
            return result.structured_content
        texts = [getattr(c, "text", None) for c in result.content]
        if not any(t is not None for t in texts):
            kinds = sorted({str(getattr(c, "type", "?")) for c in result.content}) or ["nothing"]
            raise BackendError(
                f"the MCP tool {spec.tool!r} answered no text ({', '.join(kinds)})",
                hint="the gateway uses structured content or text; check the MCP tool",
            )
        text = "".join(t for t in texts if t)
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and ("text" in parsed or not _wants_text(self.output_schema)):
            return parsed
        return {"text": text}

    async def _call_once(self, arguments: dict[str, Any], meta: dict[str, str]) -> Any:
        """HTTP: one session per call, so fresh credentials (OAuth2 tokens) go with each."""
        import anyio

        with anyio.fail_after(self.spec.timeout_s):
            async with self._client() as client:
                return await client.call_tool(self.spec.tool, arguments, meta=meta or None)

    def _stdio_call(self, arguments: dict[str, Any], meta: dict[str, str]) -> Any:
        """stdio: the server's shared session (started on first use)."""
        assert self.spec.command is not None
        session = self.sessions.session(self.spec.command, self.spec.timeout_s)
        return session.call(self.spec.tool, arguments, meta, self.spec.timeout_s)

    def close(self) -> None:
        """Stop the stdio server process when this backend started it alone."""
        if self._own_sessions:
            self.sessions.close()

    def call(
        self,
        arguments: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> Any:
        import anyio

        started = time.monotonic()
        # The trace context also rides in the request's ``_meta`` (``traceparent``), the
        # one carrier stdio has; the session's event loop runs in another thread. So
        # does the call's idempotency key, for the server to deduplicate on.
        meta = context_carrier()
        if idempotency_key is not None:
            meta[MCP_IDEMPOTENCY_META] = idempotency_key
        try:
            if self.spec.command:
                result = self._stdio_call(arguments, meta)
            else:
                result = anyio.run(self._call_once, arguments, meta)
        except (BackendError, InputError):
            raise
        except TimeoutError as exc:
            raise BackendTimeout(
                f"the MCP tool {self.spec.tool!r} timed out after "
                f"{time.monotonic() - started:.1f} s",
                hint="raise backend.timeout_s or check the MCP server",
            ) from exc
        except Exception as exc:
            raise BackendError(
                f"the MCP backend for {self.spec.tool!r} failed: {type(exc).__name__}: {exc}",
                hint="check the server command/url and that it serves this tool",
            ) from exc
        return self._result(result)
