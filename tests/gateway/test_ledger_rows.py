"""The idempotency ledger's prepared SQLite statements write the rows its Core ones do."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from daytwo.exceptions import ConflictError
from daytwo.gateway.idempotency import IdempotencyLedger
from daytwo.store import Store

ARGS: dict[str, Any] = {"x": [1, "é"], "nested": {"b": None}}
RESULT: dict[str, Any] = {"output": {"v": "é", "n": 1.5}, "tool": "t", "flags": ["f"]}


def _rows(path: Path) -> dict[str, tuple[Any, ...]]:
    con = sqlite3.connect(path)
    try:
        cur = con.execute(
            "SELECT key, tool, version, arguments_hash, status, result, "
            "typeof(created_at), length(created_at) FROM gateway_idempotency"
        )
        return {row[0]: row[1:] for row in cur}
    finally:
        con.close()


def test_prepared_and_core_paths_write_the_same_rows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'l.db'}")
    store.upgrade()
    try:
        prepared = IdempotencyLedger(store)
        core = IdempotencyLedger(store)
        core._prepared = None  # the PostgreSQL path: Core statements in a session
        assert prepared._prepared is not None
        for ledger, key in ((prepared, "p"), (core, "c")):
            assert ledger.claim(key, "t", "1.0.0", ARGS) is None
            ledger.complete(key, RESULT)
        rows = _rows(tmp_path / "l.db")
        assert rows["p"] == rows["c"]
        assert rows["p"][3] == "done"
        # Each path reads back what the other wrote, as the stored result.
        assert core.claim("p", "t", "1.0.0", ARGS) == RESULT
        assert prepared.claim("c", "t", "1.0.0", ARGS) == RESULT
        # The claim's primary key still refuses another call under the key.
        with pytest.raises(ConflictError):
            prepared.claim("c", "other", "1.0.0", ARGS)
        # A failed call's claim is released, and the key can be claimed again.
        assert prepared.claim("r", "t", "1.0.0", ARGS) is None
        prepared.release("r")
        assert prepared.claim("r", "t", "1.0.0", ARGS) is None
    finally:
        store.dispose()
