"""A write session holds the process's writer lock (and, past its first statement,
SQLite's): it must hold it only for database work. Every flow below runs its slow
non-database work (embedding over HTTP, a tool's backend) at SLOW_S a time, so a write
session that wraps any of it is open at least SLOW_S, and the longest one is asserted
to stay below that."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from daytwo.gateway import Gateway
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.bulk import parse_document
from daytwo.knowledge.erase import erase
from daytwo.knowledge.generations import backfill, cutover, parse_chunking, start_migration
from daytwo.knowledge.ingest import commit_writes, prepare_writes
from daytwo.store import Store, WriterHold
from daytwo.store.tables.knowledge import KbChunk
from daytwo.testing import ScriptedModelServer
from daytwo.testing.scripted_model import hashing_embedding

SLOW_S = 0.6
"""What one piece of slow work (an embedding, a backend call) takes in these flows."""


def slow_embedding(text: str) -> list[float]:
    time.sleep(SLOW_S)
    return hashing_embedding(text, 64)


@pytest.fixture
def remote() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(embed=slow_embedding) as server:
        yield server


def test_the_longest_write_session_and_its_caller_are_recorded(sqlite_store: Store) -> None:
    sqlite_store.reset_writer_hold()
    with sqlite_store.session(write=True) as s:
        s.execute(sa.text("SELECT 1"))
        time.sleep(0.05)
    sqlite_store.write(lambda s: s.execute(sa.text("SELECT 1")))
    longest = sqlite_store.reset_writer_hold()
    assert longest.seconds >= 0.05
    assert "test_writer_hold.py" in longest.caller
    assert "test_the_longest_write_session_and_its_caller_are_recorded" in longest.caller
    assert sqlite_store.max_writer_hold == WriterHold(0.0, "")
    with sqlite_store.session() as s:  # reads are not writer holds
        time.sleep(0.02)
    assert sqlite_store.max_writer_hold.seconds == 0.0


def test_a_slow_write_session_is_logged_with_its_caller(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sqlite_store.slow_hold_s = 0.01

    def slow(s: Any) -> None:
        time.sleep(0.03)

    with caplog.at_level(logging.WARNING, logger="daytwo.store.store"):
        sqlite_store.write(slow)
    [record] = [r for r in caplog.records if "write transaction was open" in r.getMessage()]
    assert "test_a_slow_write_session_is_logged_with_its_caller" in record.getMessage()


def test_knowledge_flows_embed_outside_write_sessions(
    sqlite_store: Store, tmp_path: Path, remote: ScriptedModelServer
) -> None:
    kb = KnowledgeBase(sqlite_store, tmp_path / "data", embedder=f"openai:a@{remote.base_url}")
    try:
        sqlite_store.reset_writer_hold()
        kb.upsert_document("docs", "d0", "alpha bravo charlie", title="zero")
        kb.upsert_document("docs", "d1", "delta echo foxtrot", title="one")
        status = start_migration(
            kb,
            "docs",
            f"openai:b@{remote.base_url}",
            chunking=parse_chunking("size=24,overlap=4", {}),
        )
        # Prepared before the shadow generation went live: embedded for it at commit.
        doc = parse_document({"doc_id": "d2", "text": "golf hotel", "title": "two"})
        commit_writes(kb, "docs", prepare_writes(kb, [doc], []))
        backfill(kb, status.id)  # its batches and its final sweep
        cutover(kb, "docs")
        erase(kb, "docs", document="d1")
        kb.delete_document("docs", "d0")
        longest = sqlite_store.reset_writer_hold()
        assert longest.seconds < SLOW_S, longest
        with sqlite_store.session() as s:
            generations = set(
                s.scalars(sa.select(KbChunk.generation).where(KbChunk.doc_id == "d2"))
            )
        assert len(generations) == 2, "the late write reached both live generations"
    finally:
        kb.close()


def test_gateway_calls_run_their_backend_outside_write_sessions(sqlite_store: Store) -> None:
    gateway = Gateway(sqlite_store)
    try:

        def backend(**kw: Any) -> dict[str, Any]:
            time.sleep(SLOW_S)
            return {"ok": True, **kw}

        gateway.register_python("slow", backend)
        gateway.register(
            {
                "name": "slow_tool",
                "capability": "test.slow",
                "version": "1.0.0",
                "input_schema": {"type": "object"},
                "backend": {"type": "python", "callable": "slow"},
            }
        )
        sqlite_store.reset_writer_hold()
        gateway.call("slow_tool", {"a": 1}, idempotency_key="run1:step1")
        gateway.call("slow_tool", {"a": 1}, idempotency_key="run1:step1")  # replayed
        gateway.call("slow_tool", {"a": 2})
        gateway.telemetry.flush()
        longest = sqlite_store.reset_writer_hold()
        assert longest.seconds < SLOW_S, longest
    finally:
        gateway.close()
