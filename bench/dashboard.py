"""Dashboard benchmark: the overview's server time on a store seeded with 100k runs.

    python bench/dashboard.py --json bench/results/dashboard.json [--runs 100000]

The store (a SQLite file, or ``--database-url``) is seeded by
``daytwo.testing.seed_runs`` (100k runs over 30 days, with their 433k spans: 45 % of
them tenant ``default``, 40 % ``acme``). A viewer of each tenant logs in; every
contender is one in-process request (Starlette's TestClient: the whole app, no
network) and its figure is the median of ``--requests`` requests, in ms. Rounds are
interleaved and rotated (bench/_common.py).

Contenders, for the tenant with the most runs (``default``) unless named:
- ``overview_24h`` / ``overview_7d`` / ``overview_30d``: ``GET /?window=...``;
- ``overview_30d_acme``: the same for tenant ``acme``;
- ``export_30d_json``: ``GET /?window=30d&export=agent-health&format=json``;
- peer ``python_rows_30d``: the same run figures computed the obvious way, fetching
  the window's rows (agent, version, status, times, cost, tokens, error) and
  aggregating in Python with exact numpy percentiles, no page around it;
- peer ``old_overview``: the figures of the previous overview page (the last 500
  runs and the ledger's 30-day cost report over the spans), without its page; one
  call per round (it takes seconds);
- ``health_30d`` / ``health_30d_acme``: the overview's run figures alone
  (``run_health``, which reads each run's stored latency bucket), against the peers
  ``perrow_health_30d`` / ``perrow_health_30d_acme``: the same three statements as
  the overview ran before runs stored their latency, computing each row's bucket from
  ``finished_at - created_at`` (``julianday()`` or an epoch difference, then ``ln()``),
  over the covering index they had (created for them here, with ``finished_at``).

The target (issue 18) is ≤ 200 ms server time per page at 100k runs; the knowledge
and eval sections are empty here (their cost grows with collections and eval runs,
not with runs).
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
import sqlalchemy as sa
from fastapi.testclient import TestClient

import _pages as pages
from _common import interleave, machine, measuring
from _pages import get, login, seeded_store, timed
from daytwo.server import create_app
from daytwo.server.auth import KeyStore
from daytwo.server.health import WINDOWS, run_health
from daytwo.server.tenancy import tenant_clause
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.runtime import RunRecord

ROUNDS = 7
REQUESTS = 5


def python_rows(store: Store, tenant: str, days: float = 30.0) -> dict[Any, Any]:
    """The peer: fetch the window's rows and aggregate in Python (exact percentiles)."""
    since = utcnow() - timedelta(days=days)
    q = sa.select(
        RunRecord.agent_name,
        RunRecord.agent_version,
        RunRecord.status,
        RunRecord.created_at,
        RunRecord.finished_at,
        RunRecord.cost_usd,
        RunRecord.tokens,
        RunRecord.error,
    ).where(RunRecord.created_at >= since, tenant_clause(RunRecord.principal, tenant))
    groups: dict[Any, dict[str, Any]] = defaultdict(
        lambda: {"runs": 0, "cost": 0.0, "tokens": 0, "lat": [], "status": defaultdict(int)}
    )
    with store.session() as s:
        for name, version, status, created, finished, cost, tokens, error in s.execute(q):
            g = groups[(name, version)]
            g["runs"] += 1
            g["cost"] += cost
            g["tokens"] += tokens
            g["status"][status] += 1
            if finished is not None:
                g["lat"].append((finished - created).total_seconds() * 1000.0)
            if error:
                g["status"]["error:" + error.split(":", 1)[0]] += 1
    for g in groups.values():
        if g["lat"]:
            g["p50"], g["p95"] = np.quantile(np.asarray(g["lat"]), [0.5, 0.95])
    return groups


PERROW_INDEX = (
    "CREATE INDEX ix_bench_perrow_health ON runtime_runs (created_at, principal, agent_name,"
    " agent_version, status, finished_at, cost_usd, tokens)"
)


def perrow_health(store: Store, tenant: str, days: float = 30.0) -> list[Any]:
    """The peer: the overview's statements as they were, each row's bucket computed in SQL."""
    since = utcnow() - timedelta(days=days)
    sqlite = store.is_sqlite
    if sqlite:
        ms: Any = (
            sa.func.julianday(RunRecord.finished_at) - sa.func.julianday(RunRecord.created_at)
        ) * 86_400_000.0
        day: Any = sa.func.substr(RunRecord.created_at, 1, 10)
        err = sa.func.coalesce(RunRecord.error, "")
        kind: Any = sa.func.substr(err, 1, sa.func.instr(err + ":", ":") - 1)
    else:
        epoch = sa.func.extract("epoch", RunRecord.finished_at - RunRecord.created_at)
        ms = sa.cast(epoch, sa.Float) * 1000.0
        day = sa.func.to_char(sa.func.timezone("UTC", RunRecord.created_at), "YYYY-MM-DD")
        kind = sa.func.split_part(sa.func.coalesce(RunRecord.error, ""), ":", 1)
    clipped = sa.case((ms < 1.0, 1.0), else_=ms)
    bucket = sa.case(
        (
            RunRecord.finished_at.is_not(None),
            sa.cast(sa.func.floor(sa.func.ln(clipped) * 16), sa.Integer),
        ),
        else_=None,
    )
    where = sa.and_(RunRecord.created_at >= since, tenant_clause(RunRecord.principal, tenant))
    agent = (RunRecord.agent_name, RunRecord.agent_version)
    cost, tokens = sa.func.sum(RunRecord.cost_usd), sa.func.sum(RunRecord.tokens)
    failed = sa.func.sum(sa.case((RunRecord.status == "failed", 1), else_=0))
    statements = [
        sa.select(*agent, RunRecord.status, bucket, sa.func.count(), cost, tokens)
        .where(where)
        .group_by(*agent, RunRecord.status, bucket),
        sa.select(*agent, day, sa.func.count(), failed, cost).where(where).group_by(*agent, day),
        sa.select(*agent, RunRecord.status, kind, sa.func.count())
        .where(where, RunRecord.status.in_(("failed", "cancelled")))
        .group_by(*agent, RunRecord.status, kind),
    ]
    with store.session(snapshot=True) as s:
        return [s.execute(q).all() for q in statements]


def run(args: argparse.Namespace) -> dict[str, Any]:
    seed = seeded_store(args.database_url, args.runs, "daytwo-bench-dashboard-")
    store, seeded, seed_s = seed.store, seed.runs, seed.seed_s
    with store.engine.begin() as conn:
        conn.exec_driver_sql(PERROW_INDEX)
        if not store.is_sqlite:
            conn.exec_driver_sql("ANALYZE runtime_runs")
    app = create_app(seed.settings, store, with_runtime=False)
    ks = KeyStore(store)
    default_key = ks.create(role="viewer", tenant="default", name="bench default")[1]
    acme_key = ks.create(role="viewer", tenant="acme", name="bench acme")[1]
    # One client runs the app's lifespan; the second shares the started app.
    with TestClient(app) as c_default:
        c_acme = TestClient(app)
        login(c_default, default_key)
        login(c_acme, acme_key)

        def old_overview() -> Any:
            # The figures of the page this one replaced (its template was trivial).
            from daytwo.server.routes.costs import cost_report
            from daytwo.server.routes.runs import list_runs

            runs = list_runs(store, "default", limit=500)
            report = cost_report(store, "default", utcnow() - timedelta(days=30))
            return runs, report

        n = args.requests
        month = WINDOWS["30d"]
        contenders = {
            "overview_24h": lambda: timed(get(c_default, "/?window=24h"), n),
            "overview_7d": lambda: timed(get(c_default, "/?window=7d"), n),
            "overview_30d": lambda: timed(get(c_default, "/?window=30d"), n),
            "overview_30d_acme": lambda: timed(get(c_acme, "/?window=30d"), n),
            "export_30d_json": lambda: timed(
                get(c_default, "/?window=30d&export=agent-health&format=json"), n
            ),
            "python_rows_30d": lambda: timed(lambda: python_rows(store, "default"), n),
            "health_30d": lambda: timed(lambda: run_health(store, "default", month), n),
            "health_30d_acme": lambda: timed(lambda: run_health(store, "acme", month), n),
            "perrow_health_30d": lambda: timed(lambda: perrow_health(store, "default"), n),
            "perrow_health_30d_acme": lambda: timed(lambda: perrow_health(store, "acme"), n),
            # Seconds per call at 100k runs: one call per round is enough to see it.
            "old_overview": lambda: timed(old_overview, 1),
        }
        with measuring(args.lock) as measured:
            result = interleave(contenders, args.rounds)
    store.dispose()
    seed.tmp.cleanup()
    med = {k: v["median"] for k, v in result["contenders"].items()}
    return {
        "benchmark": "dashboard overview server time",
        "unit": "ms per request (median of requests per round)",
        "store": seed.label,
        "seeded": {
            "runs": seeded.runs,
            "spans": seeded.spans,
            "by_tenant": seeded.by_tenant,
            "seed_seconds": round(seed_s, 1),
        },
        "requests_per_round": n,
        "target_ms": 200,
        "within_target": {k: med[k] <= 200 for k in med if k.startswith("overview")},
        "ratios": {
            "python_rows_30d / overview_30d": round(
                med["python_rows_30d"] / med["overview_30d"], 2
            ),
            "old_overview / overview_30d": round(med["old_overview"] / med["overview_30d"], 2),
            "health_30d / perrow_health_30d": round(
                med["health_30d"] / med["perrow_health_30d"], 2
            ),
            "health_30d_acme / perrow_health_30d_acme": round(
                med["health_30d_acme"] / med["perrow_health_30d_acme"], 2
            ),
        },
        **result,
        "machine": machine(),
        "measured": measured,
    }


def main() -> None:
    pages.main(__doc__ or "", run, ROUNDS, REQUESTS)


if __name__ == "__main__":
    main()
