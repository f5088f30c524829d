"""Budgets (USD and tokens per UTC day) and rate limits of the model gateway.

Each tenant and each API key may have a :class:`~daytwo.store.tables.server.ModelBudget`.
Before a call, :meth:`GatewayLimits.check` refuses it when a budget of the key or
its tenant is spent (:class:`~daytwo.exceptions.BudgetExceeded`, a 429 that says
what was spent of what and when it resets) or a rate limit is hit
(:class:`~daytwo.exceptions.RateLimited`, a 429 with ``Retry-After``). After the
call, :meth:`GatewayLimits.record` adds its tokens and its cost, priced from the
answering profile's dated price (a model without a known price counts tokens
only, and says so in the log once).

Counters live in the ``limits`` library's storage: in memory (per process) by
default, in Redis when ``DAYTWO_REDIS_URL`` is set, so several workers and
replicas share them. Dollars are counted as integer nano-dollars, keyed by the UTC
date, and expire two days later; every call is counted, budget or not. A call
that starts within budget may end past it; the next one is refused.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast

import sqlalchemy as sa
from limits import RateLimitItemPerMinute
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from daytwo.exceptions import BudgetExceeded, InputError, RateLimited
from daytwo.models.profiles import Profile
from daytwo.models.types import Usage
from daytwo.server.auth import Principal
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.server import ModelBudget

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = ["BudgetInfo", "GatewayLimits", "Scope", "Spent"]

log = logging.getLogger("daytwo.server.llm")

Scope = Literal["tenant", "key"]
CACHE_SECONDS = 2.0
"""How long a worker trusts its copy of a budget (changes show within this)."""
_NANO = 1_000_000_000
_EXPIRY = 2 * 86_400


@dataclass(frozen=True)
class BudgetInfo:
    """One budget as shown by the API and the CLI, with what was spent today."""

    scope: Scope
    subject: str
    tenant: str
    usd_per_day: float | None
    tokens_per_day: int | None
    requests_per_minute: int | None
    spent_usd: float
    spent_tokens: int


@dataclass(frozen=True)
class Spent:
    """What a tenant or key spent today."""

    usd: float
    tokens: int


class _MemoryCounters:
    """Daily counters of one process (the ``limits`` memory storage starts a timer
    thread on most increments: too slow for every gateway call)."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._day = ""

    def incr(self, key: str, expiry: int, amount: int) -> None:
        with self._lock:
            day = key.split("/", 4)[3]
            if day != self._day:  # a new day: yesterday's counters may go
                if self._day:
                    self._counts = {k: v for k, v in self._counts.items() if f"/{day}/" in k}
                self._day = max(day, self._day)
            self._counts[key] = self._counts.get(key, 0) + amount

    def get(self, key: str) -> int:
        return self._counts.get(key, 0)


class _StorageCounters:
    """Daily counters in a ``limits`` storage (Redis: shared by workers and replicas)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def incr(self, key: str, expiry: int, amount: int) -> None:
        self.storage.incr(key, expiry, amount)

    def get(self, key: str) -> int:
        return int(self.storage.get(key))


@dataclass(frozen=True)
class _Limits:
    usd_per_day: float | None
    tokens_per_day: int | None
    requests_per_minute: int | None


def _until_midnight(now: datetime) -> float:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (tomorrow - now).total_seconds()


class GatewayLimits:
    """Budget and rate-limit checks of gateway calls (see the module docstring)."""

    def __init__(self, store: Store, settings: Settings | None = None) -> None:
        self.store = store
        uri = (settings.redis_url if settings is not None else None) or "memory://"
        options: dict[str, Any] = {}
        if uri.startswith(("redis://", "rediss://")):
            options["key_prefix"] = "daytwo-gateway"
        self.storage: Storage = cast(Storage, storage_from_string(uri, **options))
        self._rate = MovingWindowRateLimiter(self.storage)
        self._counters: _MemoryCounters | _StorageCounters = (
            _StorageCounters(self.storage) if "key_prefix" in options else _MemoryCounters()
        )
        self._cache: dict[tuple[str, str], tuple[float, _Limits | None]] = {}
        self._lock = threading.Lock()
        self._unpriced: set[str] = set()

    # -- configuration ---------------------------------------------------------------

    def set(
        self,
        scope: Scope,
        subject: str,
        *,
        tenant: str,
        usd_per_day: float | None = None,
        tokens_per_day: int | None = None,
        requests_per_minute: int | None = None,
    ) -> BudgetInfo:
        """Create or replace the limits of a tenant or a key (None = no limit)."""
        if scope not in ("tenant", "key"):
            raise InputError(f"unknown budget scope {scope!r}", hint="use tenant or key")
        for name, value in (
            ("usd_per_day", usd_per_day),
            ("tokens_per_day", tokens_per_day),
            ("requests_per_minute", requests_per_minute),
        ):
            if value is not None and value < 0:
                raise InputError(f"{name} must be 0 or more, got {value}", param=name)
        with self.store.session(write=True) as s:
            row = s.get(ModelBudget, (scope, subject))
            if row is None:
                row = ModelBudget(scope=scope, subject=subject, tenant=tenant)
                s.add(row)
            row.usd_per_day = usd_per_day
            row.tokens_per_day = tokens_per_day
            row.requests_per_minute = requests_per_minute
            row.updated_at = utcnow()
        with self._lock:
            self._cache.pop((scope, subject), None)
        return self.info(scope, subject, tenant=tenant)

    def delete(self, scope: Scope, subject: str, *, tenant: str) -> bool:
        """Remove the limits of a tenant or key of ``tenant``; False when there were none."""
        with self.store.session(write=True) as s:
            gone = s.execute(
                sa.delete(ModelBudget).where(
                    ModelBudget.scope == scope,
                    ModelBudget.subject == subject,
                    ModelBudget.tenant == tenant,
                )
            ).rowcount  # type: ignore[attr-defined]
        with self._lock:
            self._cache.pop((scope, subject), None)
        return bool(gone)

    def all(self, tenant: str) -> list[BudgetInfo]:
        """Every budget of ``tenant`` (its own and its keys'), with today's spending."""
        q = (
            sa.select(ModelBudget)
            .where(ModelBudget.tenant == tenant)
            .order_by(ModelBudget.scope.desc(), ModelBudget.subject)
        )
        with self.store.session() as s:
            rows = list(s.scalars(q))
        return [self._info(r) for r in rows]

    def info(self, scope: Scope, subject: str, *, tenant: str) -> BudgetInfo:
        """The budget of one tenant or key of ``tenant`` (limits None when not set)."""
        with self.store.session() as s:
            row = s.get(ModelBudget, (scope, subject))
            if row is not None and row.tenant != tenant:
                row = None
            if row is None:
                row = ModelBudget(scope=scope, subject=subject, tenant=tenant)
            return self._info(row)

    def _info(self, row: ModelBudget) -> BudgetInfo:
        scope: Scope = "key" if row.scope == "key" else "tenant"
        spent = self.spent(scope, row.subject)
        return BudgetInfo(
            scope=scope,
            subject=row.subject,
            tenant=row.tenant,
            usd_per_day=row.usd_per_day,
            tokens_per_day=row.tokens_per_day,
            requests_per_minute=row.requests_per_minute,
            spent_usd=spent.usd,
            spent_tokens=spent.tokens,
        )

    @property
    def local(self) -> bool:
        """Whether the counters are this process's memory (no I/O to count a call)."""
        return isinstance(self._counters, _MemoryCounters)

    def _limits(self, scope: Scope, subject: str) -> _Limits | None:
        now = time.monotonic()
        hit = self._cache.get((scope, subject))
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.store.session() as s:
            row = s.get(ModelBudget, (scope, subject))
            found = (
                None
                if row is None
                else _Limits(row.usd_per_day, row.tokens_per_day, row.requests_per_minute)
            )
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(scope, subject)] = (now + CACHE_SECONDS, found)
        return found

    # -- counters --------------------------------------------------------------------

    @staticmethod
    def _key(scope: str, subject: str, day: str, what: str) -> str:
        return f"budget/{scope}/{subject}/{day}/{what}"

    def spent(self, scope: Scope, subject: str, *, at: datetime | None = None) -> Spent:
        """What ``subject`` spent on the UTC day of ``at`` (default today)."""
        day = (at or datetime.now(UTC)).date().isoformat()
        usd = self._counters.get(self._key(scope, subject, day, "usd"))
        tokens = self._counters.get(self._key(scope, subject, day, "tokens"))
        return Spent(usd=int(usd) / _NANO, tokens=int(tokens))

    def _scopes(self, principal: Principal) -> list[tuple[Scope, str, str, _Limits]]:
        out: list[tuple[Scope, str, str, _Limits]] = []
        for scope, subject, label in (
            ("tenant", principal.tenant, f"tenant {principal.tenant!r}"),
            ("key", principal.key_id, f"API key {principal.label}"),
        ):
            limits = self._limits(scope, subject)  # type: ignore[arg-type]
            if limits is not None:
                out.append((scope, subject, label, limits))  # type: ignore[arg-type]
        return out

    def check(self, principal: Principal) -> None:
        """Refuse the call when a budget is spent or a rate limit is hit."""
        scopes = self._scopes(principal)
        if not scopes:
            return
        now = datetime.now(UTC)
        for scope, subject, label, limits in scopes:
            if limits.usd_per_day is None and limits.tokens_per_day is None:
                continue
            spent = self.spent(scope, subject, at=now)
            wait = _until_midnight(now)
            if limits.usd_per_day is not None and spent.usd >= limits.usd_per_day:
                raise BudgetExceeded(
                    f"{label} has spent its model budget for today: ${spent.usd:.6f} of "
                    f"${limits.usd_per_day:.6f} per day (resets at 00:00 UTC, in {wait:.0f} s)",
                    hint="wait for the reset or raise the budget (daytwo models budgets set)",
                    retry_after=wait,
                )
            if limits.tokens_per_day is not None and spent.tokens >= limits.tokens_per_day:
                raise BudgetExceeded(
                    f"{label} has spent its token budget for today: {spent.tokens} of "
                    f"{limits.tokens_per_day} tokens per day (resets at 00:00 UTC, in "
                    f"{wait:.0f} s)",
                    hint="wait for the reset or raise the budget (daytwo models budgets set)",
                    retry_after=wait,
                )
        for scope, subject, label, limits in scopes:
            rpm = limits.requests_per_minute
            if rpm is None:
                continue
            item = RateLimitItemPerMinute(rpm)
            if not self._rate.hit(item, "rate", scope, subject):
                stats = self._rate.get_window_stats(item, "rate", scope, subject)
                retry = max(0.0, stats.reset_time - time.time())
                raise RateLimited(
                    f"{label} exceeded its rate limit of {rpm} model calls per minute",
                    hint=f"retry in {retry:.1f} s or raise requests_per_minute",
                    retry_after=retry,
                )

    def record(self, principal: Principal, usage: Usage, profile: Profile | None) -> None:
        """Count one finished call's tokens and cost for the key and its tenant.

        Always counted (not only when a budget is set), so a budget set during the day
        knows what was spent before it.
        """
        now = datetime.now(UTC)
        day = now.date().isoformat()  # YYYY-MM-DD, as strftime but cheaper
        nano = 0
        price = profile.price_at(now) if profile is not None else None
        if price is not None:
            usd = price.cost(
                usage.input_tokens, usage.output_tokens, usage.cached_tokens, usage.reasoning_tokens
            )
            nano = round(usd * _NANO)
        elif profile is not None and profile.name not in self._unpriced:
            self._unpriced.add(profile.name)
            log.warning("no price known for %s: budgets count its tokens only", profile.name)
        tokens = usage.total_tokens
        for scope, subject in (("tenant", principal.tenant), ("key", principal.key_id)):
            if tokens:
                self._counters.incr(self._key(scope, subject, day, "tokens"), _EXPIRY, tokens)
            if nano:
                self._counters.incr(self._key(scope, subject, day, "usd"), _EXPIRY, nano)
