"""API keys (stored hashed), roles, tenants and dashboard sessions.

A key reads ``dt_<id>_<secret>``: the id is public (it names the key in lists
and audit records), the secret is 32 random bytes of which only a SHA-256
digest is stored. Keys are high-entropy random strings, so a plain digest
(no slow KDF) is the usual choice (GitHub and Stripe tokens work this way);
comparison is constant-time.

A verified key is remembered for :data:`VERIFIED_TTL` seconds per process (keyed by
the digest of the whole presented key, never the key itself), so a client's
requests do not each read the key's row. Revoking a key through any
:class:`KeyStore` of the process forgets it at once (the next request is refused);
a revocation made by another process (another API worker, ``daytwo keys revoke``)
is seen by this one within :data:`VERIFIED_TTL` seconds.

Roles are ordered: ``viewer`` reads, ``operator`` also starts and steers runs,
ingests and runs evals, ``admin`` also manages keys. A principal only ever sees
its own tenant's objects.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa

from daytwo.exceptions import (
    ConflictError,
    DatabaseLocked,
    InputError,
    NotAuthenticated,
    NotFoundError,
    PermissionDenied,
)
from daytwo.store import Store
from daytwo.store.base import new_id, utcnow
from daytwo.store.tables.server import ApiKey, DashboardSession

__all__ = [
    "ROLES",
    "KeyInfo",
    "KeyStore",
    "NotAuthenticated",
    "Principal",
    "Role",
    "is_api_key",
    "role_at_least",
]

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")
_RANK: dict[str, int] = {role: i for i, role in enumerate(ROLES)}
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_KEY_RE = re.compile(r"^dt_([0-9a-f]{32})_([A-Za-z0-9_-]{20,100})$")
SESSION_TTL = timedelta(hours=12)
_log = logging.getLogger(__name__)
USE_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key (no write per request)."""
VERIFIED_TTL = 5.0
"""Seconds a process trusts a key it verified before reading its row again (the bound
on how late a revocation made by another process takes effect here)."""
_VERIFIED_MAX = 10_000


def is_api_key(key: str) -> bool:
    """True when ``key`` has the form of a tenant API key (valid or not)."""
    return _KEY_RE.match(key.strip()) is not None


def role_at_least(role: str, needed: Role) -> bool:
    """True when ``role`` ranks at or above ``needed``."""
    return _RANK.get(role, -1) >= _RANK[needed]


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id and name, its tenant and role."""

    key_id: str
    name: str
    tenant: str
    role: Role

    @property
    def label(self) -> str:
        """How the principal appears in audit records and cost reports."""
        return f"key:{self.key_id[:8]}" + (f" ({self.name})" if self.name else "")

    def require(self, needed: Role) -> None:
        """Raise PermissionDenied unless this principal's role is at least ``needed``."""
        if not role_at_least(self.role, needed):
            raise PermissionDenied(
                f"role {self.role!r} may not do this; it needs {needed!r}",
                hint=f"use a key with role {needed} or higher (daytwo keys create --role {needed})",
            )


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown about a key (never its secret)."""

    id: str
    name: str
    tenant: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, row: ApiKey) -> KeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            tenant=row.tenant,
            role=row.role,  # type: ignore[arg-type]
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
        )


def check_tenant(tenant: str) -> str:
    """Validate a tenant name or raise InputError."""
    if not _TENANT_RE.match(tenant):
        raise InputError(
            f"tenant {tenant!r} is not a valid tenant name",
            hint="use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return tenant


def check_role(role: str) -> Role:
    """Validate a role name or raise InputError."""
    if role not in _RANK:
        raise InputError(f"unknown role {role!r}", hint=f"use one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


@dataclass
class _Verified:
    principal: Principal
    last_used_at: datetime | None
    until: float


class _VerifiedKeys:
    """Keys verified recently in this process, by the digest of the presented key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: dict[str, _Verified] = {}
        self.revocations = 0  # a verification that read the row before one must not be kept

    def get(self, digest: str) -> _Verified | None:
        hit = self.entries.get(digest)
        if hit is None or hit.until < time.monotonic():
            return None
        return hit

    def put(self, digest: str, hit: _Verified, revocations: int) -> None:
        with self.lock:
            if revocations != self.revocations:
                return
            if len(self.entries) >= _VERIFIED_MAX:
                self.entries.clear()
            self.entries[digest] = hit

    def forget(self, key_id: str) -> None:
        with self.lock:
            self.revocations += 1
            for digest in [d for d, v in self.entries.items() if v.principal.key_id == key_id]:
                del self.entries[digest]


# One cache per store object: every KeyStore of a process over that store (the API's,
# the model gateway's, the MCP endpoint's) shares it, so a revocation evicts for all.
_verified: weakref.WeakKeyDictionary[Store, _VerifiedKeys] = weakref.WeakKeyDictionary()
_verified_lock = threading.Lock()


def _verified_keys(store: Store) -> _VerifiedKeys:
    with _verified_lock:
        cache = _verified.get(store)
        if cache is None:
            cache = _verified[store] = _VerifiedKeys()
        return cache


class KeyStore:
    """Creates, lists, revokes and checks API keys and dashboard sessions."""

    def __init__(self, store: Store, *, verified_ttl: float = VERIFIED_TTL) -> None:
        self.store = store
        self.verified_ttl = verified_ttl
        self._verified = _verified_keys(store)

    def create(self, *, role: str, tenant: str, name: str = "") -> tuple[KeyInfo, str]:
        """Create a key; return its info and the full key (shown only this once)."""
        role_ = check_role(role)
        check_tenant(tenant)
        if len(name) > 200:
            raise InputError("key name is longer than 200 characters", hint="use a shorter name")
        key_id = new_id()
        secret = secrets.token_urlsafe(32)
        row = ApiKey(
            id=key_id,
            name=name,
            tenant=tenant,
            role=role_,
            secret_sha256=_digest(secret),
            created_at=utcnow(),
        )
        with self.store.session(write=True) as s:
            s.add(row)
        return KeyInfo.of(row), f"dt_{key_id}_{secret}"

    def list(self, *, tenant: str | None = None) -> list[KeyInfo]:
        """Every key (of one tenant when given), oldest first."""
        q = sa.select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
        if tenant is not None:
            q = q.where(ApiKey.tenant == tenant)
        with self.store.session() as s:
            return [KeyInfo.of(r) for r in s.scalars(q)]

    def revoke(self, key_id: str, *, tenant: str | None = None) -> KeyInfo:
        """Revoke a key (and its sessions); NotFoundError when unknown or another tenant's."""
        with self.store.session(write=True) as s:
            row = s.get(ApiKey, key_id)
            if row is None or (tenant is not None and row.tenant != tenant):
                raise NotFoundError(
                    f"no API key {key_id!r}", hint="list the keys with `daytwo keys list`"
                )
            if row.revoked_at is None and row.role == "admin":
                others = s.scalar(
                    sa.select(sa.func.count())
                    .select_from(ApiKey)
                    .where(
                        ApiKey.tenant == row.tenant,
                        ApiKey.role == "admin",
                        ApiKey.revoked_at.is_(None),
                        ApiKey.id != row.id,
                    )
                )
                if not others:
                    raise ConflictError(
                        f"key {key_id!r} is the last admin key of tenant {row.tenant!r}; "
                        "revoking it would leave the tenant without an admin",
                        hint="create another admin key first "
                        f"(daytwo keys create --role admin --tenant {row.tenant})",
                    )
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            s.execute(sa.delete(DashboardSession).where(DashboardSession.key_id == key_id))
            info = KeyInfo.of(row)
        # After the commit: a request verifying meanwhile re-reads the row and sees it.
        self._verified.forget(key_id)
        return info

    def _touch(self, row: ApiKey | _Verified, key_id: str) -> None:
        """Record that the key was used: at most one write per key and minute.

        Its own short write transaction after the read (a read that turned into a
        write could fail on SQLite when another writer committed meanwhile), and
        best effort: a key whose use cannot be recorded right now still works.
        """
        now = utcnow()
        if row.last_used_at is not None and row.last_used_at >= now - USE_RESOLUTION:
            return
        if isinstance(row, _Verified):
            row.last_used_at = now  # this process tries again in a minute, not per request
        try:
            with self.store.session(write=True) as s:
                s.execute(
                    sa.update(ApiKey)
                    .where(
                        ApiKey.id == key_id,
                        sa.or_(
                            ApiKey.last_used_at.is_(None),
                            ApiKey.last_used_at < now - USE_RESOLUTION,
                        ),
                    )
                    .values(last_used_at=now)
                )
        except DatabaseLocked:
            _log.debug("last use of key %s not recorded: the database is busy", key_id)

    def verified(self, key: str) -> Principal | None:
        """The principal of ``key`` when this process verified it recently and recording
        its use needs no write; else ``None`` (then call :meth:`authenticate`). No I/O."""
        m = _KEY_RE.match(key.strip())
        if not m:
            return None
        key_id, secret = m.groups()
        cached = self._verified.get(f"{key_id}:{_digest(secret)}")
        if cached is None or cached.last_used_at is None:
            return None
        if cached.last_used_at < utcnow() - USE_RESOLUTION:
            return None
        return cached.principal

    def authenticate(self, key: str) -> Principal:
        """The principal of a full key; NotAuthenticated when unknown, malformed or revoked."""
        m = _KEY_RE.match(key.strip())
        if not m:
            raise NotAuthenticated(
                "the API key is malformed", hint="keys look like dt_<32 hex>_<secret>"
            )
        key_id, secret = m.groups()
        digest = _digest(secret)
        cached = self._verified.get(f"{key_id}:{digest}")
        if cached is not None:
            self._touch(cached, key_id)
            return cached.principal
        revocations = self._verified.revocations
        with self.store.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or not hmac.compare_digest(row.secret_sha256, digest):
                raise NotAuthenticated(
                    "the API key is not valid", hint="create one with `daytwo keys create`"
                )
            if row.revoked_at is not None:
                raise NotAuthenticated(
                    "the API key was revoked", hint="create a new one with `daytwo keys create`"
                )
        principal = Principal(key_id=row.id, name=row.name, tenant=row.tenant, role=row.role)  # type: ignore[arg-type]
        entry = _Verified(principal, row.last_used_at, time.monotonic() + self.verified_ttl)
        self._touch(entry, key_id)
        if self.verified_ttl > 0:
            self._verified.put(f"{key_id}:{digest}", entry, revocations)
        return principal

    def open_session(self, key: str) -> tuple[Principal, str]:
        """Log in with a key: return the principal and a new session token for a cookie."""
        principal = self.authenticate(key)
        token = secrets.token_urlsafe(32)
        now = utcnow()
        with self.store.session(write=True) as s:
            s.add(
                DashboardSession(
                    token_sha256=_digest(token),
                    key_id=principal.key_id,
                    created_at=now,
                    expires_at=now + SESSION_TTL,
                )
            )
            s.execute(sa.delete(DashboardSession).where(DashboardSession.expires_at < now))
        return principal, token

    def session_principal(self, token: str) -> Principal:
        """The principal of a session cookie; NotAuthenticated when expired or revoked."""
        with self.store.session() as s:
            sess = s.get(DashboardSession, _digest(token))
            if sess is None or sess.expires_at < utcnow():
                raise NotAuthenticated("the session expired", hint="log in again with your key")
            row = s.get(ApiKey, sess.key_id)
            if row is None or row.revoked_at is not None:
                raise NotAuthenticated("the session's key was revoked", hint="log in again")
        self._touch(row, row.id)
        return Principal(key_id=row.id, name=row.name, tenant=row.tenant, role=row.role)  # type: ignore[arg-type]

    def close_session(self, token: str) -> None:
        """Log out: forget the session."""
        with self.store.session(write=True) as s:
            s.execute(
                sa.delete(DashboardSession).where(DashboardSession.token_sha256 == _digest(token))
            )
