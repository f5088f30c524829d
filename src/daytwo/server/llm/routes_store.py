"""Model routes: a tenant's alias for an ordered fallback chain of model profiles.

A route belongs to one tenant: another tenant neither sees nor resolves it (its
name simply does not exist there). A route's name may not shadow a profile, and
its targets are chat profiles of the registry, checked when the route is set.
Lookups on the call path are cached per process for :data:`CACHE_SECONDS`.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from daytwo.exceptions import InputError, NotFoundError
from daytwo.models.profiles import ProfileRegistry
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.server import ModelRoute

__all__ = ["CACHE_SECONDS", "ModelRoutes", "RouteInfo"]

CACHE_SECONDS = 2.0
"""How long a worker trusts its copy of a tenant's routes (changes show within this)."""

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")
MAX_TARGETS = 8


@dataclass(frozen=True)
class RouteInfo:
    """One route as shown by the API and the CLI."""

    name: str
    targets: list[str]
    description: str
    created_at: datetime
    updated_at: datetime


class ModelRoutes:
    """Create, list, delete and resolve the routes of each tenant."""

    def __init__(self, store: Store, registry: ProfileRegistry) -> None:
        self.store = store
        self.registry = registry
        self._cache: dict[str, tuple[float, dict[str, list[str]]]] = {}
        self._lock = threading.Lock()

    def _check(self, name: str, targets: list[str]) -> None:
        if not _NAME_RE.match(name):
            raise InputError(
                f"route name {name!r} is not valid",
                hint="use 1-128 letters, digits, '.', '_', ':', '/' or '-'",
                param="name",
            )
        if name in self.registry.names():
            raise InputError(
                f"route name {name!r} is a model profile's name",
                hint="choose a name that is not a profile (e.g. 'fast' or 'team/default')",
                param="name",
            )
        if not targets or len(targets) > MAX_TARGETS:
            raise InputError(
                f"a route needs 1 to {MAX_TARGETS} target profiles, got {len(targets)}",
                hint="list the profiles to try, in order",
                param="targets",
            )
        for i, target in enumerate(targets):
            profile = self.registry.get(target)  # NotFoundError names close profiles
            if profile.features.embeddings:
                raise InputError(
                    f"target {target!r} is an embedding model, not a chat model",
                    hint="route to chat profiles only",
                    param=f"targets.{i}",
                )

    def set(self, tenant: str, name: str, targets: list[str], description: str = "") -> RouteInfo:
        """Create or replace the route ``name`` of ``tenant``."""
        self._check(name, targets)
        if len(description) > 500:
            raise InputError("description is longer than 500 characters", param="description")
        now = utcnow()
        with self.store.session(write=True) as s:
            row = s.get(ModelRoute, (tenant, name))
            if row is None:
                row = ModelRoute(
                    tenant=tenant,
                    name=name,
                    targets=list(targets),
                    description=description,
                    created_at=now,
                    updated_at=now,
                )
                s.add(row)
            else:
                row.targets = list(targets)
                row.description = description
                row.updated_at = now
            info = _info(row)
        self._forget(tenant)
        return info

    def delete(self, tenant: str, name: str) -> None:
        """Delete a route; NotFoundError when ``tenant`` has none of that name."""
        with self.store.session(write=True) as s:
            gone = s.execute(
                sa.delete(ModelRoute).where(ModelRoute.tenant == tenant, ModelRoute.name == name)
            ).rowcount  # type: ignore[attr-defined]
        self._forget(tenant)
        if not gone:
            raise NotFoundError(f"no model route {name!r}", hint="list them with GET /v1/models")

    def all(self, tenant: str) -> list[RouteInfo]:
        """The routes of ``tenant`` by name."""
        q = sa.select(ModelRoute).where(ModelRoute.tenant == tenant).order_by(ModelRoute.name)
        with self.store.session() as s:
            return [_info(r) for r in s.scalars(q)]

    def get(self, tenant: str, name: str) -> RouteInfo:
        """One route of ``tenant``."""
        with self.store.session() as s:
            row = s.get(ModelRoute, (tenant, name))
            if row is None:
                raise NotFoundError(f"no model route {name!r}", hint="list your routes")
            return _info(row)

    def _routes(self, tenant: str) -> dict[str, list[str]]:
        now = time.monotonic()
        hit = self._cache.get(tenant)
        if hit is not None and hit[0] > now:
            return hit[1]
        q = sa.select(ModelRoute.name, ModelRoute.targets).where(ModelRoute.tenant == tenant)
        with self.store.session() as s:
            routes = {name: list(targets) for name, targets in s.execute(q)}
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[tenant] = (now + CACHE_SECONDS, routes)
        return routes

    def _forget(self, tenant: str) -> None:
        with self._lock:
            self._cache.pop(tenant, None)

    def names(self, tenant: str) -> list[str]:
        """Route names of ``tenant`` (cached)."""
        return sorted(self._routes(tenant))

    def chain(self, tenant: str, name: str) -> list[str] | None:
        """The target profiles of ``tenant``'s route ``name``, or None (cached)."""
        return self._routes(tenant).get(name)


def _info(row: ModelRoute) -> RouteInfo:
    return RouteInfo(
        name=row.name,
        targets=list(row.targets),
        description=row.description,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
