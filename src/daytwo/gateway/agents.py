"""Agent principals: API keys (stored as SHA-256 hashes), their tenant, per-tool permissions.

An agent acts for one tenant (``default`` unless created with another): when the
gateway was given a visibility rule (``Gateway(visible_to=...)``, the server's
ownership and grants), a key-authenticated agent sees and calls only its tenant's
tools, whatever its patterns say.
"""

from __future__ import annotations

import fnmatch
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from daytwo.exceptions import ConflictError, InputError, NotFoundError, PermissionDenied
from daytwo.store import Store
from daytwo.store.tables.gateway import GatewayAgent

__all__ = ["DEFAULT_TENANT", "Agent", "AgentRegistry", "hash_key"]

_PREFIX = "dt_"
DEFAULT_TENANT = "default"
"""The tenant of host-made objects (the server layer names it the same)."""


def hash_key(api_key: str) -> str:
    """SHA-256 hex of an API key (keys are random, so no salt or KDF is needed)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Agent:
    """An authenticated principal of the gateway and what it may call.

    ``tenant``: whose tools it sees (when the gateway has a visibility rule);
    ``may_invoke=False``: it may list tools but not call them (a viewer's API key);
    ``principal``: how audit records name it (default: the agent's name for tenant
    ``default``, else ``<tenant>/agent:<name>``, so records scope to the tenant).
    """

    name: str
    tools: tuple[str, ...]
    rate_limit: str | None = None
    tenant: str = DEFAULT_TENANT
    may_invoke: bool = True
    principal: str | None = None

    @property
    def actor(self) -> str:
        """The actor of this principal's audit records."""
        if self.principal is not None:
            return self.principal
        if self.tenant == DEFAULT_TENANT:
            return self.name
        return f"{self.tenant}/agent:{self.name}"

    def may_call(self, tool: str, capability: str) -> bool:
        """True when a pattern matches the tool name or ``cap:<capability>``."""
        for pattern in self.tools:
            if pattern.startswith("cap:"):
                if fnmatch.fnmatchcase(capability, pattern[4:]):
                    return True
            elif fnmatch.fnmatchcase(tool, pattern):
                return True
        return False


class AgentRegistry:
    """Creates agents and authenticates API keys (cached briefly in memory)."""

    def __init__(self, store: Store, *, cache_ttl_s: float = 5.0) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self._by_hash: dict[str, tuple[float, Agent | None]] = {}
        self._by_name: dict[str, tuple[float, Agent | None]] = {}
        self._lock = threading.Lock()

    def create(
        self,
        name: str,
        tools: list[str],
        rate_limit: str | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> str:
        """Create an agent of ``tenant``; return its API key (shown once, stored hashed).

        Agent names are unique across tenants (the name addresses the agent in calls,
        the call log and ``agent-delete``); only a server operator creates agents, so
        a taken name tells no tenant anything.
        """
        if not name or len(name) > 128:
            raise InputError(
                "an agent name must have 1 to 128 characters", hint="pick a short name"
            )
        if not tenant or len(tenant) > 100 or "/" in tenant:
            raise InputError(
                f"tenant {tenant!r} is not a valid tenant name",
                hint="use 1-100 letters, digits, '.', '_' or '-'",
            )
        if not tools:
            raise InputError(
                f"agent {name!r} would be allowed no tool",
                hint="pass tool name patterns (orders_*) or capabilities (cap:orders.*)",
            )
        key = _PREFIX + secrets.token_urlsafe(32)
        try:
            with self.store.session(write=True) as s:
                if s.get(GatewayAgent, name) is not None:
                    raise ConflictError(f"agent {name!r} exists already", hint="pick another name")
                s.add(
                    GatewayAgent(
                        name=name,
                        key_hash=hash_key(key),
                        tools=list(tools),
                        rate_limit=rate_limit,
                        tenant=tenant,
                    )
                )
        except SAIntegrityError as exc:
            raise ConflictError(f"agent {name!r} exists already", hint="pick another name") from exc
        with self._lock:
            self._by_name.pop(name, None)
        return key

    def delete(self, name: str) -> None:
        """Revoke an agent and its key."""
        with self.store.session(write=True) as s:
            row = s.get(GatewayAgent, name)
            if row is None:
                raise NotFoundError(f"unknown agent {name!r}", hint="see `daytwo tools agent-list`")
            s.delete(row)
        with self._lock:
            self._by_hash.clear()
            self._by_name.clear()

    def list_agents(self, tenant: str | None = None) -> list[Agent]:
        """Every agent (of one tenant when given)."""
        q = select(GatewayAgent).order_by(GatewayAgent.name)
        if tenant is not None:
            q = q.where(GatewayAgent.tenant == tenant)
        with self.store.session() as s:
            return [_agent(r) for r in s.scalars(q)]

    def authenticate(self, api_key: str) -> Agent:
        """The agent owning ``api_key``, or PermissionDenied."""
        digest = hash_key(api_key)
        now = time.monotonic()
        with self._lock:
            hit = self._by_hash.get(digest)
        if hit is None or now - hit[0] >= self.cache_ttl_s:
            with self.store.session() as s:
                row = s.scalar(select(GatewayAgent).where(GatewayAgent.key_hash == digest))
                agent = _agent(row) if row else None
            hit = (now, agent)
            with self._lock:
                self._by_hash[digest] = hit
        if hit[1] is None:
            raise PermissionDenied("the API key is not valid", hint="ask an admin for an agent key")
        return hit[1]

    def find(self, name: str) -> Agent | None:
        """An agent by name, or None (cached for ``cache_ttl_s``)."""
        now = time.monotonic()
        with self._lock:
            hit = self._by_name.get(name)
        if hit is None or now - hit[0] >= self.cache_ttl_s:
            with self.store.session() as s:
                row = s.get(GatewayAgent, name)
                agent = _agent(row) if row else None
            hit = (now, agent)
            with self._lock:
                self._by_name[name] = hit
        return hit[1]


def _agent(row: GatewayAgent) -> Agent:
    return Agent(row.name, tuple(row.tools), row.rate_limit, tenant=row.tenant)
