"""Tenant ownership of other layers' named objects (tools, collections, eval sets)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from daytwo.exceptions import ConflictError, NotFoundError
from daytwo.server.tenancy import DEFAULT_TENANT
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.server import Ownership

__all__ = ["check_visible", "claim", "claimed", "owners", "release", "visible"]


def owners(store: Store, kind: str, names: Iterable[str]) -> dict[str, str]:
    """The owning tenant of each name (``default`` when unclaimed)."""
    wanted = sorted(set(names))
    found: dict[str, str] = {}
    with store.session() as s:
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            q = sa.select(Ownership.name, Ownership.tenant).where(
                Ownership.kind == kind, Ownership.name.in_(chunk)
            )
            found.update({n: t for n, t in s.execute(q)})
    return {n: found.get(n, DEFAULT_TENANT) for n in wanted}


def claimed(store: Store, kind: str, name: str) -> bool:
    """True when a tenant claimed ``name`` through the API (it was not made on the host)."""
    with store.session() as s:
        return s.get(Ownership, (kind, name)) is not None


def visible(store: Store, kind: str, names: Iterable[str], tenant: str) -> list[str]:
    """The names (in order given) that ``tenant`` owns."""
    names = list(names)
    own = owners(store, kind, names)
    return [n for n in names if own[n] == tenant]


def check_visible(store: Store, kind: str, name: str, tenant: str, what: str) -> None:
    """NotFoundError unless ``tenant`` owns ``name`` (another tenant's object does not exist)."""
    if owners(store, kind, [name])[name] != tenant:
        raise NotFoundError(f"no {what} {name!r}", hint=f"list your {what}s first")


def claim(store: Store, kind: str, name: str, tenant: str, what: str, *, exists: bool) -> bool:
    """Record that ``tenant`` owns ``name``; ConflictError when another tenant does.

    ``exists`` says whether the layer already has an object of that name: an existing
    unclaimed object belongs to ``default``, so another tenant cannot take it over.
    """
    with store.session() as s:
        row = s.get(Ownership, (kind, name))
        if row is None:
            if exists and tenant != DEFAULT_TENANT:
                raise ConflictError(f"{what} {name!r} exists already", hint="choose another name")
            s.add(Ownership(kind=kind, name=name, tenant=tenant, created_at=utcnow()))
            return True
        if row.tenant != tenant:
            raise ConflictError(f"{what} {name!r} exists already", hint="choose another name")
        return False


def release(store: Store, kind: str, name: str) -> None:
    """Forget a claim (when creating the object failed after claiming its name)."""
    with store.session() as s:
        s.execute(sa.delete(Ownership).where(Ownership.kind == kind, Ownership.name == name))
