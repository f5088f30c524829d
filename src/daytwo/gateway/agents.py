"""Agent principals: API keys (stored as SHA-256 hashes) and per-tool permissions."""

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

__all__ = ["Agent", "AgentRegistry", "hash_key"]

_PREFIX = "dt_"


def hash_key(api_key: str) -> str:
    """SHA-256 hex of an API key (keys are random, so no salt or KDF is needed)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass(frozen=True)
class Agent:
    """An authenticated agent and what it may call."""

    name: str
    tools: tuple[str, ...]
    rate_limit: str | None = None

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

    def create(self, name: str, tools: list[str], rate_limit: str | None = None) -> str:
        """Create an agent and return its API key (shown once, stored hashed)."""
        if not name or len(name) > 128:
            raise InputError(
                "an agent name must have 1 to 128 characters", hint="pick a short name"
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
                        name=name, key_hash=hash_key(key), tools=list(tools), rate_limit=rate_limit
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

    def list_agents(self) -> list[Agent]:
        """Every agent."""
        with self.store.session() as s:
            rows = s.scalars(select(GatewayAgent).order_by(GatewayAgent.name))
            return [Agent(r.name, tuple(r.tools), r.rate_limit) for r in rows]

    def authenticate(self, api_key: str) -> Agent:
        """The agent owning ``api_key``, or PermissionDenied."""
        digest = hash_key(api_key)
        now = time.monotonic()
        with self._lock:
            hit = self._by_hash.get(digest)
        if hit is None or now - hit[0] >= self.cache_ttl_s:
            with self.store.session() as s:
                row = s.scalar(select(GatewayAgent).where(GatewayAgent.key_hash == digest))
                agent = Agent(row.name, tuple(row.tools), row.rate_limit) if row else None
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
                agent = Agent(row.name, tuple(row.tools), row.rate_limit) if row else None
            hit = (now, agent)
            with self._lock:
                self._by_name[name] = hit
        return hit[1]

    def by_name(self, name: str) -> Agent:
        """An agent by name, or PermissionDenied."""
        agent = self.find(name)
        if agent is None:
            raise PermissionDenied(
                f"unknown agent {name!r}",
                hint="create it: daytwo tools agent-create NAME --tool PATTERN",
            )
        return agent
