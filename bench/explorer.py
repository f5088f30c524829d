"""Trace explorer benchmark: server time of its pages on a store seeded with 100k runs.

    python bench/explorer.py --json bench/results/explorer.json [--runs 100000]
        [--database-url postgresql+psycopg://...]

The store (a SQLite file, or ``--database-url``) is seeded by
``daytwo.testing.seed_runs`` (100k runs over 30 days with ~433k spans; tenant ``acme``
holds 40 % of the runs). A viewer of ``acme`` logs in; every contender is one
in-process request through the whole app (Starlette's TestClient, no network) and its
figure is the median of ``--requests`` requests, in ms. Rounds are interleaved and
rotated (bench/_common.py).

Contenders (``explorer_*`` are ``GET /explorer?...``):
- ``first_page``; ``page_41`` (the 41st page of 50 by keyset cursor, 2,000 rows in);
- ``needle_text_failed`` (free text + status: the one seeded failing run) and
  ``text_no_match`` (free text found nowhere: the scan visits every acme run);
- ``model_common`` / ``model_rare`` / ``tool_failed`` (runs found through their trace);
- ``sort_latency`` (computed sort key, no index); ``ranges`` (cost and latency ranges
  and a one-day window);
- ``session``, ``user``, ``compare`` (the needle's session, user, and two of its turns);
- ``export_failed_json`` (every failed acme run, ~2,000 rows, walked by cursor; a
  download, not a page);
- ``keyset_sql_page_401`` against the peer ``offset_sql_page_401``: the query alone
  (no page around it) of the 401st page, 20,000 rows in, by the explorer's keyset
  cursor and by OFFSET 20000 — what the cursor buys on deep pages.

The target (issue 18) is ≤ 200 ms server time per page at 100k runs.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi.testclient import TestClient

import _pages as pages
from _common import interleave, machine, measuring
from _pages import get, login, seeded_store, timed
from daytwo.server import create_app
from daytwo.server.auth import KeyStore
from daytwo.server.explorer_query import Filters, explore, latency_ms, run_rows
from daytwo.server.tenancy import tenant_clause
from daytwo.store.tables.runtime import RunRecord
from daytwo.testing.seed_runs import NEEDLE_PHRASE

ROUNDS = 7
REQUESTS = 5
DEEP_PAGE = 401


def _cursor_of_page(c: TestClient, page: int) -> str:
    url = "/explorer"
    for _ in range(page - 1):
        m = re.search(r'<a href="([^"]+)" id="next-page"', c.get(url).text)
        if m is None:
            raise SystemExit(f"fewer than {page} pages")
        url = m.group(1).replace("&amp;", "&")
    return url


def run(args: argparse.Namespace) -> dict[str, Any]:
    seed = seeded_store(args.database_url, args.runs, "daytwo-bench-explorer-")
    store, seeded, seed_s = seed.store, seed.runs, seed.seed_s
    app = create_app(seed.settings, store, with_runtime=False)
    needle = seeded.needle
    key = KeyStore(store).create(role="viewer", tenant="acme", name="bench acme")[1]
    day = (seeded.first + timedelta(days=12)).date().isoformat()
    with TestClient(app) as c:
        login(c, key)
        page_41 = _cursor_of_page(c, 41)

        deep = Filters()
        for _ in range(DEEP_PAGE - 1):
            deep = replace(deep, cursor=explore(store, "acme", deep).next_cursor or "")

        def keyset_sql() -> Any:
            return explore(store, "acme", deep)

        def offset_sql() -> Any:
            q = (
                sa.select(RunRecord, latency_ms(store.engine.dialect.name))
                .where(tenant_clause(RunRecord.principal, "acme"))
                .order_by(RunRecord.created_at.desc(), RunRecord.id.desc())
                .offset((DEEP_PAGE - 1) * 50)
                .limit(51)
            )
            with store.session() as s:
                return run_rows(s.execute(q).all()[:50])

        if [r["id"] for r in keyset_sql().rows] != [r["id"] for r in offset_sql()]:
            raise SystemExit("the keyset and OFFSET pages differ")

        phrase = quote(NEEDLE_PHRASE)
        pages = {
            "explorer_first_page": "/explorer",
            "explorer_page_41": page_41,
            "explorer_needle_text_failed": f"/explorer?status=failed&q={phrase}",
            "explorer_text_no_match": "/explorer?q=no+such+words+anywhere",
            "explorer_model_common": "/explorer?model=claude-3-5-haiku-latest",
            "explorer_model_rare": "/explorer?model=gpt-4o",
            "explorer_tool_failed": "/explorer?tool=refunds_issue&status=failed",
            "explorer_sort_latency": "/explorer?sort=latency",
            "explorer_ranges": f"/explorer?cost_min=0.0005&latency_max=1500&since={day}",
            "session": f"/explorer/sessions/{needle.session_id}",
            "user": f"/explorer/users/{quote(needle.user_id)}",
            "compare": f"/explorer/compare?run={needle.session_runs[0]}"
            f"&run={needle.session_runs[1]}",
            "export_failed_json": "/explorer/export?status=failed&format=json",
        }
        n = args.requests
        contenders: dict[str, Callable[[], float]] = {
            name: (lambda u=u: timed(get(c, u), n)) for name, u in pages.items()
        }
        contenders["keyset_sql_page_401"] = lambda: timed(keyset_sql, n)
        contenders["offset_sql_page_401"] = lambda: timed(offset_sql, n)
        with measuring(args.lock) as measured:
            result = interleave(contenders, args.rounds)
    store.dispose()
    seed.tmp.cleanup()
    med = {k: v["median"] for k, v in result["contenders"].items()}
    worst = max((k for k in med if k in pages), key=lambda k: med[k])
    return {
        "benchmark": "trace explorer server time",
        "unit": "ms per request (median of requests per round)",
        "store": seed.label,
        "seeded": {
            "runs": seeded.runs,
            "spans": seeded.spans,
            "by_tenant": seeded.by_tenant,
            "seed_seconds": round(seed_s, 1),
        },
        "tenant": "acme",
        "requests_per_round": n,
        "target_ms": 200,
        "within_target": {k: med[k] <= 200 for k in pages},
        "slowest_page": {worst: med[worst]},
        "ratios": {
            "offset_sql_page_401 / keyset_sql_page_401": round(
                med["offset_sql_page_401"] / med["keyset_sql_page_401"], 2
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
