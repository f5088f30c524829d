"""The gateway: every tool call goes through auth, policy, validation, backend, adapter, drift.

    gateway = Gateway(store)
    gateway.register(definition)
    result = gateway.call("orders_status_cached", {"order_id": "A-1001"}, agent="support")

Each call emits an ``execute_tool {name}`` span (tracer ``daytwo.gateway``);
denials and drift alerts add a ``daytwo.decision`` event, and denials are
appended to the audit log.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from jsonschema import Draft202012Validator
from opentelemetry import trace
from sqlalchemy import select

from daytwo.exceptions import (
    BackendError,
    CodeExecutionDenied,
    ContractViolation,
    DriftBlocked,
    PermissionDenied,
    ToolError,
)
from daytwo.gateway.adapters import CompiledAdapter
from daytwo.gateway.agents import DEFAULT_TENANT, Agent, AgentRegistry
from daytwo.gateway.authority import check_allowed, check_tenant_credentials, runs_code
from daytwo.gateway.backends import (
    Backend,
    HttpBackend,
    McpBackend,
    McpSessions,
    PythonBackend,
)
from daytwo.gateway.catalog import Catalog, ToolRecord, parse_tool_ref, unknown_tool
from daytwo.gateway.contracts import (
    HttpBackendSpec,
    McpBackendSpec,
    PythonBackendSpec,
    ToolDefinition,
    parse_definitions,
)
from daytwo.gateway.drift import DriftMonitor, Violation, check_expectation
from daytwo.gateway.drift_profiles import StoredProfiles
from daytwo.gateway.egress import EgressPolicy, pinned_client
from daytwo.gateway.idempotency import IdempotencyLedger
from daytwo.gateway.policies import RateLimits, check_payload, find_injection_markers
from daytwo.gateway.telemetry import Telemetry
from daytwo.gateway.vault import CredentialVault, OAuth2TokenCache
from daytwo.store import Store, new_id
from daytwo.store.tables.gateway import GatewayDriftAlert
from daytwo.tracing.content import capture

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = ["DriftAlert", "Gateway", "ToolResult"]

log = logging.getLogger("daytwo.gateway")


@dataclass(frozen=True)
class DriftAlert:
    """A drift alert raised by one call."""

    tool: str
    version: str
    field: str
    kind: str
    source: str
    detail: str
    action: str
    response_index: int


@dataclass
class ToolResult:
    """What a call returns to the agent."""

    output: dict[str, Any]
    tool: str
    version: str
    latency_ms: float
    cost_usd: float
    alerts: list[DriftAlert] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    adapted: bool = False
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "output": self.output,
            "tool": self.tool,
            "version": self.version,
            "latency_ms": round(self.latency_ms, 3),
            "cost_usd": self.cost_usd,
            "alerts": [a.__dict__ for a in self.alerts],
            "flags": self.flags,
            "adapted": self.adapted,
            "replayed": self.replayed,
        }


class _Compiled:
    """A tool version ready for the call path."""

    def __init__(
        self, record: ToolRecord, make_backend: Callable[[ToolDefinition], Backend]
    ) -> None:
        d = record.definition
        self.record = record
        self.key = f"{record.name}@{record.version}"
        self.input_validator = Draft202012Validator(d.input_schema)
        self.output_validator = Draft202012Validator(d.output_schema)
        self.adapter = CompiledAdapter(d.adapter) if d.adapter else None
        self._make_backend = make_backend
        self._backend: Backend | None = None
        self.code_checked = False

    def close(self) -> None:
        """Release the backend's resources (an MCP stdio server process)."""
        closer = getattr(self._backend, "close", None)
        if closer is not None:
            closer()

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self._make_backend(self.record.definition)
        return self._backend


def _backend_urls(definition: ToolDefinition) -> list[str]:
    """Every URL the definition's backend reaches (endpoint, OAuth2 token URL)."""
    spec = definition.backend
    if not isinstance(spec, (HttpBackendSpec, McpBackendSpec)):
        return []
    urls = [spec.url] if spec.url else []
    if spec.auth is not None and spec.auth.token_url:
        urls.append(spec.auth.token_url)
    return urls


def _first_error(validator: Draft202012Validator, value: Any) -> str | None:
    for err in validator.iter_errors(value):
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        return f"{where}: {err.message}"
    return None


def _decision(kind: str, summary: str, data: dict[str, Any]) -> None:
    try:
        from daytwo.tracing import record_decision
    except ImportError:  # tracing layer absent: add the event the same way
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "daytwo.decision",
                {
                    "daytwo.decision.kind": kind,
                    "daytwo.decision.summary": summary,
                    "daytwo.decision.data": json.dumps(data, default=str),
                },
            )
        return
    record_decision(kind, summary, data)


class Gateway:
    """The tool gateway: catalog, backends, policies, drift, telemetry, idempotency."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        vault: CredentialVault | None = None,
        *,
        ssrf_allow: tuple[str, ...] | list[str] = (),
        rate_limit_storage: str | None = None,
        namespace: str = "daytwo",
        require_auth: bool = False,
        telemetry_window_s: float = 300.0,
        audit: bool = True,
        idempotency_wait_s: float = 30.0,
        idempotency_lease_s: float = 600.0,
        retry_after_max_s: float = 30.0,
        registered_by: Callable[[str], str | None] | None = None,
        visible_to: Callable[[str, list[str]], list[str]] | None = None,
        principals: Callable[[str], Agent | None] | None = None,
    ) -> None:
        """``registered_by(name)`` names the tenant that registered the tool ``name`` over
        the API (``None``: made on the host): such a tool never runs a code backend and
        reads only its tenant's credentials (see :mod:`.authority`).

        ``visible_to(tenant, names)`` returns the tool names (in order given) that
        ``tenant`` may see: a caller authenticated by a key then lists and calls only
        those, and another tenant's tool answers as a missing one. Without it every
        agent sees the whole catalog (a single-tenant gateway).

        ``principals(key)`` authenticates keys that are not agent keys (the server's
        tenant API keys): the principal it returns, ``None`` when the key is not one
        of its kind, or PermissionDenied for a key of its kind that is not valid."""
        self.store = store
        self.registered_by = registered_by
        self.visible_to = visible_to
        self.principals = principals
        self.settings = settings
        self._vault = vault
        self.require_auth = require_auth
        self.audit = audit
        self.retry_after_max_s = retry_after_max_s
        self.idempotency = IdempotencyLedger(
            store, wait_s=idempotency_wait_s, lease_s=idempotency_lease_s
        )
        self.catalog = Catalog(store)
        self.agents = AgentRegistry(store)
        if rate_limit_storage is None:
            rate_limit_storage = (settings.redis_url if settings else None) or "memory://"
        self.rate_limits = RateLimits(rate_limit_storage, namespace=namespace)
        allow = [*(settings.egress_allow if settings is not None else ()), *ssrf_allow]
        self.guard = EgressPolicy(allow)
        self.tokens = OAuth2TokenCache()
        self.drift = DriftMonitor(shared=StoredProfiles(store))
        self.telemetry = Telemetry(store, window_s=telemetry_window_s)
        self._python: dict[str, Callable[..., Any]] = {}
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None
        # stdio MCP servers: one process and session per command, shared by its tools
        self.mcp_sessions = McpSessions()
        self._tracer = trace.get_tracer("daytwo.gateway")

    # -- catalog -----------------------------------------------------------------------------

    @property
    def vault(self) -> CredentialVault | None:
        """The credential vault (built from the settings on first use)."""
        if self._vault is None and self.settings is not None:
            self._vault = CredentialVault.from_settings(self.store, self.settings)
        return self._vault

    def register(self, definition: ToolDefinition | dict[str, Any]) -> ToolRecord:
        """Register one tool version (ConflictError if the version exists with another hash)."""
        if not isinstance(definition, ToolDefinition):
            definition = parse_definitions(definition)[0]
        return self.register_many([definition])[0]

    def register_many(self, definitions: list[ToolDefinition]) -> list[ToolRecord]:
        """Register several versions in one transaction (nothing half-registered).

        Every URL a definition points at passes the egress policy first (SsrfBlocked
        for an internal target not allow-listed, InputError for a non-http(s) URL).
        CodeExecutionDenied when a code backend is outside the operator's allow-lists.
        """
        for definition in definitions:
            self._check_allow_lists(definition)
            for url in _backend_urls(definition):
                self.guard.check_registration(url)
        return self.catalog.register_many(definitions)

    def _check_allow_lists(self, definition: ToolDefinition) -> None:
        settings = self.settings
        check_allowed(
            definition,
            python=settings.allowed_python_backends if settings else None,
            mcp_commands=settings.allowed_mcp_commands if settings else None,
        )

    def _authorize_code(self, compiled: _Compiled) -> None:
        """Refuse to run a code backend a tenant registered or the allow-lists do not admit."""
        if compiled.code_checked:
            return
        d = compiled.record.definition
        what = runs_code(d)
        tenant = self.registered_by(d.name) if self.registered_by is not None else None
        if what is not None:
            self._check_allow_lists(d)
            if tenant is not None:
                raise CodeExecutionDenied(
                    f"tool {d.name!r} was registered by a tenant and its {what} would run "
                    "code on the server (rule: no code execution from the API)",
                    hint="a server operator re-registers it from the CLI, or the tenant "
                    "replaces it with an http or mcp url backend",
                )
        if tenant is not None:
            check_tenant_credentials(d, tenant)
        compiled.code_checked = True

    def register_python(self, name: str, fn: Callable[..., Any]) -> None:
        """Make ``fn`` the callable that python backends named ``name`` call."""
        self._python[name] = fn
        with self._lock:
            for key in [
                k
                for k, c in self._compiled.items()
                if isinstance(c.record.definition.backend, PythonBackendSpec)
                and c.record.definition.backend.callable == name
            ]:
                self._compiled.pop(key)

    def tools(self, capability: str | None = None, major: int | None = None) -> list[ToolRecord]:
        """Registered tool versions, optionally of one capability and major version."""
        return self.catalog.list_tools(capability, major)

    def tool_names(self, capability: str | None = None) -> list[str]:
        """The registered tools' names (of one capability), sorted, without definitions."""
        return self.catalog.names(capability)

    def get(self, tool: str, version: str | None = None) -> ToolRecord:
        """The tool version a call would use."""
        return self.catalog.resolve(tool, version)

    def create_agent(
        self,
        name: str,
        tools: list[str],
        rate_limit: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> str:
        """Create an agent of ``tenant``; returns its API key (shown once)."""
        if rate_limit:
            self.rate_limits.item(rate_limit)
        return self.agents.create(name, tools, rate_limit, tenant=tenant)

    # -- principals --------------------------------------------------------------------------

    def authenticate(self, api_key: str) -> Agent:
        """The principal of a key: an agent key, else a key ``principals`` knows."""
        try:
            return self.agents.authenticate(api_key)
        except PermissionDenied:
            other = self.principals(api_key) if self.principals is not None else None
            if other is None:
                raise
            return other

    def sees(self, principal: Agent, names: list[str]) -> list[str]:
        """The names (in order given) the principal's tenant may see."""
        if self.visible_to is None:
            return list(names)
        return self.visible_to(principal.tenant, list(names))

    def catalog_for(self, principal: Agent | None) -> list[ToolRecord]:
        """The latest version of each tool ``principal`` may see and call (all: ``None``)."""
        latest: dict[str, ToolRecord] = {}
        for record in self.tools():
            latest[record.name] = record
        if principal is None:
            return list(latest.values())
        return [
            latest[n]
            for n in self.sees(principal, list(latest))
            if principal.may_call(n, latest[n].capability)
        ]

    def _make_backend(self, definition: ToolDefinition) -> Backend:
        spec = definition.backend
        if isinstance(spec, PythonBackendSpec):
            return PythonBackend(spec, self._python)
        if isinstance(spec, HttpBackendSpec):
            return HttpBackend(
                spec,
                guard=self.guard,
                vault=self.vault,
                tokens=self.tokens,
                client=self._client(),
                max_retry_wait_s=self.retry_after_max_s,
            )
        assert isinstance(spec, McpBackendSpec)
        return McpBackend(
            spec,
            guard=self.guard,
            vault=self.vault,
            tokens=self.tokens,
            client=self._client(),
            sessions=self.mcp_sessions,
            output_schema=definition.output_schema,
        )

    def _client(self) -> httpx.Client:
        """The HTTP client of the backends: connects only where the egress policy allows."""
        with self._lock:
            if self._http is None:
                self._http = pinned_client(self.guard)
            return self._http

    def _compiled_for(self, record: ToolRecord) -> _Compiled:
        key = f"{record.name}@{record.version}"
        compiled = self._compiled.get(key)
        if compiled is None or compiled.record.definition_hash != record.definition_hash:
            compiled = _Compiled(record, self._make_backend)
            with self._lock:
                self._compiled[key] = compiled
        return compiled

    # -- calls -------------------------------------------------------------------------------

    def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        *,
        agent: str | None = None,
        api_key: str | None = None,
        idempotency_key: str | None = None,
        version: str | None = None,
        deadline: float | None = None,
    ) -> ToolResult:
        """Call a tool through every policy; raises a typed ToolError/UserError on failure.

        ``api_key`` authenticates an agent (MCP and other remote callers); ``agent``
        alone names the agent of a trusted in-process caller (the runtime) and still
        applies its permissions and rate limit; with neither, the call is anonymous
        and refused when the gateway was built with ``require_auth``. ``version`` is
        an exact version or a major to pin (``"1"``); ``tool`` may also be
        ``name@1``. With ``idempotency_key`` a repeated call returns the stored
        result without calling the backend again; the backend gets the key too
        (``Idempotency-Key`` header, MCP ``_meta``). ``deadline`` (``time.monotonic()``,
        the caller's latency budget) caps how long a backend's Retry-After is waited.
        """
        with self._tracer.start_as_current_span(
            f"execute_tool {tool}",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
        ) as span:
            keyed = self._keyed(tool, version, api_key)
            record = self.catalog.resolve(tool, version)
            compiled = self._compiled_for(record)
            d = record.definition
            span.set_attribute("gen_ai.tool.name", record.name)
            span.set_attribute("daytwo.tool.version", record.version)
            span.set_attribute("daytwo.tool.capability", record.capability)
            principal = self._admit(record, agent, api_key, keyed)
            try:
                self._authorize_code(compiled)
            except PermissionDenied as exc:
                self._deny(record, principal.actor if principal else agent, exc)
                raise
            label = principal.name if principal is not None else agent
            if label is not None:
                span.set_attribute("daytwo.agent.name", label)
            check_payload(
                arguments,
                max_bytes=d.policy.max_input_bytes,
                max_depth=d.policy.max_depth,
                what="the arguments",
            )
            capture(span, "gen_ai.tool.call.arguments", arguments)
            problem = _first_error(compiled.input_validator, arguments)
            if problem is not None:
                raise ContractViolation(
                    f"arguments for {record.name} {record.version} fail its input schema: "
                    f"{problem}",
                    hint="fix the arguments (see `daytwo tools show`)",
                )
            if idempotency_key is not None:
                stored = self.idempotency.claim(
                    idempotency_key, record.name, record.version, arguments
                )
                if stored is not None:
                    replay = ToolResult(
                        output=stored["output"],
                        tool=stored["tool"],
                        version=stored["version"],
                        latency_ms=0.0,
                        cost_usd=0.0,
                        flags=list(stored.get("flags", [])),
                        adapted=bool(stored.get("adapted")),
                        replayed=True,
                    )
                    span.set_attribute("daytwo.tool.replayed", True)
                    return replay
            try:
                result = self._execute(compiled, arguments, label, idempotency_key, deadline)
            except BaseException:
                if idempotency_key is not None:
                    self.idempotency.release(idempotency_key)
                raise
            if idempotency_key is not None:
                self.idempotency.complete(
                    idempotency_key,
                    {
                        "output": result.output,
                        "tool": result.tool,
                        "version": result.version,
                        "flags": result.flags,
                        "adapted": result.adapted,
                    },
                )
            span.set_attribute("daytwo.tool.cost_usd", result.cost_usd)
            capture(span, "gen_ai.tool.call.result", result.output)
            return result

    def _keyed(self, tool: str, version: str | None, api_key: str | None) -> Agent | None:
        """The principal of ``api_key`` when valid (``_admit`` refuses and audits the rest).

        ToolNotFound -- the very answer a tool that exists nowhere gets, before any
        version is resolved -- when the principal's tenant may not see the tool.
        """
        if api_key is None:
            return None
        try:
            principal = self.authenticate(api_key)
        except PermissionDenied:
            return None
        name = parse_tool_ref(tool, version)[0]
        if not self.sees(principal, [name]):
            # Not audited: a missing tool is not either, and a tenant reads its own
            # audit records (a record would tell it the name exists elsewhere).
            log.info("%s asked for %s, a tool its tenant cannot see", principal.actor, name)
            raise unknown_tool(name)
        return principal

    def _admit(
        self,
        record: ToolRecord,
        agent: str | None,
        api_key: str | None,
        keyed: Agent | None = None,
    ) -> Agent | None:
        principal: Agent | None = None
        try:
            if api_key is not None:
                principal = keyed if keyed is not None else self.authenticate(api_key)
                if agent is not None and agent != principal.name:
                    raise PermissionDenied(
                        f"the API key belongs to agent {principal.name!r}, not {agent!r}",
                        hint="call with the agent's own key",
                    )
            elif agent is not None:
                # A trusted in-process caller names its agent: a registered agent's
                # permissions and limits apply; an unregistered name gets no more than
                # an anonymous call (refused when the gateway requires auth).
                principal = self.agents.find(agent)
                if principal is None and self.require_auth:
                    raise PermissionDenied(
                        f"unknown agent {agent!r}",
                        hint="create it: daytwo tools agent-create NAME --tool PATTERN",
                    )
            elif self.require_auth:
                raise PermissionDenied(
                    "this gateway requires an API key",
                    hint="pass api_key (MCP: Authorization: Bearer)",
                )
            if principal is not None and not principal.may_invoke:
                raise PermissionDenied(
                    f"{principal.name} may list tools but not call them",
                    hint="call with an operator or admin API key, or an agent key",
                )
            if principal is not None and not principal.may_call(record.name, record.capability):
                raise PermissionDenied(
                    f"agent {principal.name!r} may not call {record.name}",
                    hint="grant it: add the tool or its capability to the agent's patterns",
                )
            if record.definition.policy.rate_limit:
                self.rate_limits.hit(record.definition.policy.rate_limit, "tool", record.name)
            if principal is not None and principal.rate_limit:
                self.rate_limits.hit(principal.rate_limit, "agent", principal.name)
        except PermissionDenied as exc:
            self._deny(record, principal.actor if principal else agent, exc)
            raise
        return principal

    def _deny(self, record: ToolRecord, actor: str | None, exc: PermissionDenied) -> None:
        data = {
            "tool": record.name,
            "version": record.version,
            "reason": exc.message,
            "error": type(exc).__name__,
        }
        _decision(
            "policy_denial",
            f"Denied {actor or 'anonymous'} calling {record.name}: {exc.message}.",
            data,
        )
        log.info("denied %s calling %s: %s", actor or "anonymous", record.name, exc.message)
        if not self.audit:
            return
        try:
            from daytwo.tracing.audit import AuditLog
        except ImportError:  # pragma: no cover - integration point when tracing is absent
            log.warning("audit log unavailable; denial of %s not audited", record.name)
            return
        audit_log = (
            AuditLog.for_data_dir(self.store, self.settings.data_dir)
            if self.settings is not None
            else AuditLog(self.store)
        )
        audit_log.append(
            kind="gateway.denied", actor=actor or "anonymous", subject=record.name, data=data
        )

    def _execute(
        self,
        compiled: _Compiled,
        arguments: dict[str, Any],
        label: str | None,
        idempotency_key: str | None = None,
        deadline: float | None = None,
    ) -> ToolResult:
        record = compiled.record
        d = record.definition
        started = time.perf_counter()
        try:
            raw = compiled.backend.call(
                arguments, idempotency_key=idempotency_key, deadline=deadline
            )
        except ToolError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            self.telemetry.record(
                record.name,
                record.version,
                latency_ms=elapsed,
                ok=False,
                agent=label,
                error=type(exc).__name__,
            )
            raise
        backend_ms = (time.perf_counter() - started) * 1000
        try:
            result = self._shape(compiled, raw)
        except ToolError as exc:
            self.telemetry.record(
                record.name,
                record.version,
                latency_ms=backend_ms,
                ok=False,
                agent=label,
                error=type(exc).__name__,
            )
            raise
        result.latency_ms = backend_ms
        result.cost_usd = d.cost_usd
        self.telemetry.record(
            record.name,
            record.version,
            latency_ms=backend_ms,
            ok=True,
            cost_usd=d.cost_usd,
            agent=label,
        )
        return result

    def _shape(self, compiled: _Compiled, raw: Any) -> ToolResult:
        record = compiled.record
        d = record.definition
        always = compiled.adapter is not None and compiled.adapter.spec.always
        if not isinstance(raw, dict) and not always:
            raise BackendError(
                f"{record.name} answered a JSON {type(raw).__name__}, not an object",
                hint="return an object or map the response with an always-on adapter "
                '(e.g. mapping {"items": "@"})',
            )
        check_payload(
            raw,
            max_bytes=d.policy.max_output_bytes,
            max_depth=d.policy.max_depth,
            what=f"the output of {record.name}",
        )
        output = (
            compiled.adapter.apply(raw)
            if compiled.adapter and compiled.adapter.spec.always
            else raw
        )
        drifting, new_alerts, index = self.drift.check(
            compiled.key, output, d.expectations, d.policy.warmup
        )
        schema_problem = _first_error(compiled.output_validator, output)
        if schema_problem is not None:
            v = Violation("(schema)", "schema", "contract", schema_problem)
            drifting.append(v)
            if self.drift.open_alert(compiled.key, v.field, "contract:schema"):
                new_alerts.append(v)
        adapted = False
        action = d.policy.drift
        if drifting and action == "adapt":
            if compiled.adapter is None:
                action = "block"
            else:
                output = compiled.adapter.apply(
                    output, {v.field for v in drifting} | set(d.expectations)
                )
                still = [
                    n
                    for n, e in d.expectations.items()
                    if check_expectation(e, output.get(n)) is not None
                ]
                if still or _first_error(compiled.output_validator, output) is not None:
                    action = "block"
                else:
                    adapted = True
        alerts = [
            DriftAlert(
                record.name,
                record.version,
                v.field,
                v.kind,
                v.source,
                v.detail,
                action if drifting else "flag",
                index,
            )
            for v in new_alerts
        ]
        if alerts:
            self._store_alerts(alerts, raw)
        if drifting and action == "block":
            first = drifting[0]
            raise DriftBlocked(
                f"{record.name} {record.version} output drifted on {first.field!r}: {first.detail}",
                hint="the tool's drift policy is block; fix the backend or register an adapter",
                violations=[v.__dict__ for v in drifting],
            )
        flags: list[str] = []
        if d.policy.injection != "off":
            markers = find_injection_markers(output)
            if markers:
                flags = [f"prompt_injection:{m}" for m in markers]
                _decision(
                    "policy_denial" if d.policy.injection == "block" else "injection_flag",
                    f"Output of {record.name} carries prompt-injection markers at "
                    f"{', '.join(markers)}.",
                    {"tool": record.name, "fields": markers},
                )
                if d.policy.injection == "block":
                    raise ContractViolation(
                        f"output of {record.name} looks like a prompt injection "
                        f"({', '.join(markers)})",
                        hint="the tool's injection policy is block",
                    )
        return ToolResult(
            output=output,
            tool=record.name,
            version=record.version,
            latency_ms=0.0,
            cost_usd=0.0,
            alerts=alerts,
            flags=flags,
            adapted=adapted,
        )

    def _store_alerts(self, alerts: list[DriftAlert], raw: dict[str, Any]) -> None:
        sample = {k: raw.get(k) for k in list(raw)[:20]}
        with self.store.session(write=True) as s:
            for a in alerts:
                s.add(
                    GatewayDriftAlert(
                        id=new_id(),
                        tool=a.tool,
                        version=a.version,
                        field=a.field,
                        kind=a.kind,
                        source=a.source,
                        detail=a.detail[:2000],
                        action=a.action,
                        response_index=a.response_index,
                        sample=json.loads(json.dumps(sample, default=str)),
                    )
                )
        for a in alerts:
            _decision(
                "drift_alert",
                f"{a.tool} {a.version} field {a.field} drifted ({a.kind}): {a.detail}; "
                f"action {a.action}.",
                a.__dict__,
            )
            log.warning(
                "drift on %s %s field %s (%s): %s", a.tool, a.version, a.field, a.kind, a.detail
            )

    # -- reporting ---------------------------------------------------------------------------

    def drift_alerts(self, tool: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Stored drift alerts, newest first."""
        with self.store.session() as s:
            q = select(GatewayDriftAlert).order_by(GatewayDriftAlert.created_at.desc()).limit(limit)
            if tool is not None:
                q = q.where(GatewayDriftAlert.tool == tool)
            return [
                {
                    "id": r.id,
                    "tool": r.tool,
                    "version": r.version,
                    "field": r.field,
                    "kind": r.kind,
                    "source": r.source,
                    "detail": r.detail,
                    "action": r.action,
                    "response_index": r.response_index,
                    "created_at": r.created_at.isoformat(),
                }
                for r in s.scalars(q)
            ]

    def close(self) -> None:
        """Flush telemetry and close HTTP clients."""
        self.telemetry.close()
        with self._lock:
            compiled, self._compiled = list(self._compiled.values()), {}
        for c in compiled:
            c.close()
        self.mcp_sessions.close()
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
