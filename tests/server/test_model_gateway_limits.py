"""Model gateway routes and budgets below the HTTP layer, on SQLite and PostgreSQL (and Redis)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from daytwo.exceptions import BudgetExceeded, InputError, NotFoundError, RateLimited
from daytwo.models.profiles import load_profiles
from daytwo.models.types import Usage
from daytwo.server.auth import KeyStore, Principal
from daytwo.server.llm.limits import GatewayLimits
from daytwo.server.llm.routes_store import ModelRoutes
from daytwo.settings import Settings
from daytwo.store import Store


def _principal(store: Store, tenant: str) -> Principal:
    _, key = KeyStore(store).create(role="operator", tenant=tenant)
    return KeyStore(store).authenticate(key)


def test_routes_are_per_tenant(store: Store) -> None:
    routes = ModelRoutes(store, load_profiles())
    routes.set("acme", "fast", ["openai/gpt-4o-mini", "local/smollm2-135m"])
    routes.set("globex", "fast", ["local/smollm2-135m"])
    assert routes.chain("acme", "fast") == ["openai/gpt-4o-mini", "local/smollm2-135m"]
    assert routes.chain("globex", "fast") == ["local/smollm2-135m"]
    assert routes.chain("initech", "fast") is None
    assert [r.name for r in routes.all("initech")] == []
    with pytest.raises(NotFoundError):
        routes.delete("initech", "fast")
    with pytest.raises(NotFoundError, match="gpt-9"):
        routes.set("acme", "x", ["openai/gpt-9"])
    with pytest.raises(InputError, match="1 to 8"):
        routes.set("acme", "x", [])
    routes.delete("globex", "fast")
    assert routes.chain("acme", "fast") is not None


def test_budgets_count_per_key_and_tenant(store: Store) -> None:
    limits = GatewayLimits(store)
    profile = load_profiles().get("openai/gpt-4o-mini")
    a = _principal(store, "acme")
    b = _principal(store, "globex")
    limits.set("tenant", "acme", tenant="acme", tokens_per_day=100)
    limits.check(a)
    limits.record(a, Usage(input_tokens=60, output_tokens=50), profile)
    with pytest.raises(BudgetExceeded, match="110 of 100 tokens") as spent:
        limits.check(a)
    assert spent.value.context["retry_after"] > 0
    limits.check(b)  # another tenant is not affected
    assert limits.spent("key", a.key_id).tokens == 110
    assert limits.spent("tenant", "acme").usd == pytest.approx((60 * 0.15 + 50 * 0.6) / 1e6)
    # Another tenant's view of the budget of acme's key: nothing.
    assert limits.delete("key", a.key_id, tenant="globex") is False
    assert [x.subject for x in limits.all("globex")] == []


@pytest.mark.redis
def test_budgets_and_rate_limits_are_shared_through_redis(
    sqlite_store: Store, redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=sqlite_store.url, redis_url=redis_url)
    one, two = GatewayLimits(sqlite_store, settings), GatewayLimits(sqlite_store, settings)
    tenant = f"t{uuid.uuid4().hex[:10]}"
    p = _principal(sqlite_store, tenant)
    one.set("key", p.key_id, tenant=tenant, tokens_per_day=10)
    one.check(p)
    one.record(p, Usage(input_tokens=8, output_tokens=4), None)
    with pytest.raises(BudgetExceeded):
        two.check(p)  # the second "worker" sees the first one's spending
    q = _principal(sqlite_store, tenant)
    one.set("key", q.key_id, tenant=tenant, requests_per_minute=2)
    one.check(q)
    two.check(q)
    with pytest.raises(RateLimited):
        one.check(q)  # two calls counted (one by each worker), the third is refused
