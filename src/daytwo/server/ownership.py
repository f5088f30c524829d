"""Tenant ownership of other layers' named objects (agents, tools, collections, eval sets).

An object created through the API is *owned* by the caller's tenant (a row in
``server_ownership``); an object made on the host (CLI, quickstart, config) has no row
and belongs to tenant ``default``. A server operator may *grant* an object to other
tenants (``daytwo grants add``): they see it and their agents may reference it, but
only the owner changes it. Everything else does not exist for a tenant (404).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from daytwo.exceptions import ConflictError, InputError, NotFoundError, PermissionDenied
from daytwo.server.tenancy import DEFAULT_TENANT
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.server import Grant, Ownership

__all__ = [
    "KINDS",
    "GrantInfo",
    "check_owned",
    "check_visible",
    "claim",
    "claimant",
    "grant",
    "list_grants",
    "owners",
    "release",
    "revoke_grant",
    "visible",
]

KINDS = ("agent", "tool", "collection", "eval_set")
"""Kinds of named objects whose names are owned by a tenant."""


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


def _granted(store: Store, kind: str, tenant: str) -> set[str]:
    with store.session() as s:
        return set(
            s.scalars(sa.select(Grant.name).where(Grant.kind == kind, Grant.tenant == tenant))
        )


def claimant(store: Store, kind: str, name: str) -> str | None:
    """The tenant that claimed ``name`` through the API (``None``: made on the host)."""
    with store.session() as s:
        row = s.get(Ownership, (kind, name))
        return row.tenant if row is not None else None


def visible(store: Store, kind: str, names: Iterable[str], tenant: str) -> list[str]:
    """The names (in order given) that ``tenant`` owns or was granted."""
    names = list(names)
    own = owners(store, kind, names)
    shared = _granted(store, kind, tenant)
    return [n for n in names if own[n] == tenant or n in shared]


def check_visible(store: Store, kind: str, name: str, tenant: str, what: str) -> None:
    """NotFoundError unless ``tenant`` owns or was granted ``name``.

    Another tenant's object does not exist for the caller: the message is the one a
    name that exists nowhere gets.
    """
    # On every request that names an object: one session, and the grant only read
    # when the tenant does not own the name.
    with store.session() as s:
        owner = s.scalar(
            sa.select(Ownership.tenant).where(Ownership.kind == kind, Ownership.name == name)
        )
        if (owner or DEFAULT_TENANT) == tenant:
            return
        granted = s.scalar(
            sa.select(Grant.name).where(
                Grant.kind == kind, Grant.name == name, Grant.tenant == tenant
            )
        )
    if granted is None:
        raise NotFoundError(f"no {what} {name!r}", hint=f"list your {what}s first")


def check_owned(store: Store, kind: str, name: str, tenant: str, what: str) -> None:
    """Like :func:`check_visible`, and PermissionDenied when the object is only granted."""
    check_visible(store, kind, name, tenant, what)
    if owners(store, kind, [name])[name] != tenant:
        raise PermissionDenied(
            f"{what} {name!r} is shared with your tenant read-only",
            hint=f"register a {what} of your own under another name",
        )


def claim(store: Store, kind: str, name: str, tenant: str, what: str, *, exists: bool) -> bool:
    """Record that ``tenant`` owns ``name``; ConflictError when another tenant does.

    ``exists`` says whether the layer already has an object of that name: an existing
    unclaimed object belongs to ``default``, so another tenant cannot take it over.
    The conflict does not say who holds the name.
    """
    taken = ConflictError(
        f"the name {name!r} is not available for a new {what}",
        hint="choose another name",
    )
    with store.session(write=True) as s:
        row = s.get(Ownership, (kind, name))
        if row is None:
            if exists and tenant != DEFAULT_TENANT:
                raise taken
            s.add(Ownership(kind=kind, name=name, tenant=tenant, created_at=utcnow()))
            return True
        if row.tenant != tenant:
            raise taken
        return False


def release(store: Store, kind: str, name: str) -> None:
    """Forget a claim (when creating the object failed after claiming its name)."""
    with store.session(write=True) as s:
        s.execute(sa.delete(Ownership).where(Ownership.kind == kind, Ownership.name == name))


@dataclass(frozen=True)
class GrantInfo:
    kind: str
    name: str
    tenant: str
    created_at: datetime


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InputError(f"unknown kind {kind!r}", hint=f"use one of {', '.join(KINDS)}")


def grant(store: Store, kind: str, name: str, tenant: str) -> GrantInfo:
    """Share ``name`` with ``tenant`` (read and reference, never change). Idempotent."""
    from daytwo.server.auth import check_tenant

    _check_kind(kind)
    check_tenant(tenant)
    with store.session(write=True) as s:
        row = s.get(Grant, (kind, name, tenant))
        if row is None:
            row = Grant(kind=kind, name=name, tenant=tenant, created_at=utcnow())
            s.add(row)
        return GrantInfo(row.kind, row.name, row.tenant, row.created_at)


def revoke_grant(store: Store, kind: str, name: str, tenant: str) -> None:
    """Stop sharing ``name`` with ``tenant``; NotFoundError when it was not shared."""
    _check_kind(kind)
    with store.session(write=True) as s:
        row = s.get(Grant, (kind, name, tenant))
        if row is None:
            raise NotFoundError(
                f"{kind} {name!r} is not granted to tenant {tenant!r}",
                hint="list the grants with `daytwo grants list`",
            )
        s.delete(row)


def list_grants(store: Store, tenant: str | None = None) -> list[GrantInfo]:
    """Every grant (to one tenant when given)."""
    q = sa.select(Grant).order_by(Grant.tenant, Grant.kind, Grant.name)
    if tenant is not None:
        q = q.where(Grant.tenant == tenant)
    with store.session() as s:
        return [GrantInfo(r.kind, r.name, r.tenant, r.created_at) for r in s.scalars(q)]
