"""Shared by the dashboard page benches (``dashboard.py``, ``explorer.py``): a store seeded
with runs, a logged-in client, per-request timing, and the command line."""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from _common import add_lock_options, write_result
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing.seed_runs import SeededRuns, seed_runs

__all__ = ["Seeded", "get", "login", "main", "seeded_store", "timed"]


@dataclass
class Seeded:
    """A store seeded with runs, and the settings of a server over it."""

    tmp: tempfile.TemporaryDirectory[str]
    store: Store
    runs: SeededRuns
    seed_s: float
    settings: Settings

    @property
    def label(self) -> str:
        """What the store is, for the result (no credentials)."""
        url = self.store.url
        return "sqlite file" if url.startswith("sqlite") else url.split("@")[-1]


def seeded_store(database_url: str | None, runs: int, prefix: str) -> Seeded:
    """Seed ``runs`` runs (a temporary SQLite file unless ``database_url``); on PostgreSQL
    the fresh tables get ``VACUUM ANALYZE``: what autovacuum does after a bulk insert on a
    default server (PostgreSQL 13+ vacuums after inserts too), so the planner has
    statistics and index-only scans find the pages all-visible. Autovacuum is off on
    this machine's server, which would otherwise leave every index-only scan fetching
    the heap."""
    tmp = tempfile.TemporaryDirectory(prefix=prefix)
    url = database_url or f"sqlite:///{tmp.name}/store.db"
    store = Store(url)
    store.upgrade()
    started = time.perf_counter()
    seeded = seed_runs(store, runs)
    seed_s = time.perf_counter() - started
    if not store.is_sqlite:
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    settings = Settings(data_dir=Path(tmp.name) / "data", database_url=url, embedder="hashing-384")
    return Seeded(tmp, store, seeded, seed_s, settings)


def login(c: TestClient, key: str) -> None:
    """Log ``c`` in to the dashboard with ``key`` (CSRF token from the login form)."""
    form = c.get("/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]*)"', form)
    data = {"key": key, "next": "/", "csrf_token": token.group(1) if token else ""}
    r = c.post("/login", data=data, follow_redirects=False)
    if r.status_code != 303:
        raise SystemExit(f"login failed: {r.status_code} {r.text[:200]}")


def timed(fn: Callable[[], Any], n: int) -> float:
    """Median milliseconds of ``n`` calls of ``fn``."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


def get(c: TestClient, url: str) -> Callable[[], Any]:
    """A call that GETs ``url`` and stops the bench on anything but 200."""

    def once() -> Any:
        r = c.get(url)
        if r.status_code != 200:
            raise SystemExit(f"{url}: {r.status_code} {r.text[:300]}")
        return r

    return once


def main(
    doc: str, run: Callable[[argparse.Namespace], dict[str, Any]], rounds: int, requests: int
) -> None:
    """The command line every page bench shares: seed size, rounds, backend, output."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    parser.add_argument("--json", type=Path, default=None, help="write the result here")
    add_lock_options(parser)
    args = parser.parse_args()
    write_result(args.json, run(args))
