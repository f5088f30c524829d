"""Services for worker subprocesses in the crash tests (loaded with --services).

The ``effect`` tool is a receiver that honours idempotency keys the usual way:
the effect and its key are written in one transaction, and a key seen before is
answered from the record. Every execution is also logged, so tests can tell
re-executions (allowed) from duplicated effects (never allowed).
"""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any

from daytwo.runtime import PythonTools, Services

EFFECTS_ENV = "RT_TEST_EFFECTS_DB"


def init_effects(path: str) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS executions (key TEXT, pid INTEGER)")
        conn.execute("CREATE TABLE IF NOT EXISTS effects (key TEXT, n INTEGER)")


def _effect(n: int, idempotency_key: str, delay: float = 0.05) -> dict[str, Any]:
    path = os.environ[EFFECTS_ENV]
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("INSERT INTO executions VALUES (?, ?)", (idempotency_key, os.getpid()))
        time.sleep(delay)
        conn.execute("BEGIN IMMEDIATE")
        seen = conn.execute("SELECT n FROM effects WHERE key = ?", (idempotency_key,)).fetchone()
        if seen is None:
            conn.execute("INSERT INTO effects VALUES (?, ?)", (idempotency_key, n))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return {"n": n, "replayed": seen is not None}


def services(settings: Any, store: Any) -> Services:
    tools = PythonTools()
    tools.add("effect", _effect)
    return Services(tools=tools)
