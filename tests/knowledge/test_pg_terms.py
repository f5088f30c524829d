"""PostgreSQL keyword postings (``kb_chunk_terms``): kept equal to the chunks' tsvectors on
insert, re-index, delete and erase, and built for a store made before they existed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.embedders import HashingEmbedder
from daytwo.knowledge.erase import erase
from daytwo.knowledge.fts import TERMS_TABLE, ensure_fts
from daytwo.knowledge.maintenance import vacuum
from daytwo.store import Store

pytestmark = pytest.mark.postgres
MARKER = "Zqxmarker7781secret"

# What the postings must hold: every lexeme of every chunk's tsvector, its frequency and
# the chunk's length, in the chunk's generation.
EXPECTED = (
    "SELECT c.generation, u.lexeme, c.id, greatest(coalesce(cardinality(u.positions), 0), 1), "
    "coalesce(c.token_count, 0) FROM kb_chunks AS c CROSS JOIN LATERAL unnest(c.fts) AS u"
)
HELD = f"SELECT generation, lexeme, chunk_id, tf, len FROM {TERMS_TABLE}"


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = Store(pg_url)
    store.upgrade()
    try:
        yield store
    finally:
        store.dispose()


@pytest.fixture
def kb(pg_store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase(pg_store, tmp_path / "data", embedder=HashingEmbedder())
    try:
        yield base
    finally:
        base.close()


def rows(store: Store, sql: str) -> set[tuple[object, ...]]:
    with store.engine.connect() as conn:
        return {tuple(r) for r in conn.exec_driver_sql(sql).all()}


def assert_in_step(store: Store) -> None:
    expected = rows(store, EXPECTED)
    assert expected, "the store holds chunks"
    assert rows(store, HELD) == expected


def test_postings_follow_insert_reindex_delete_and_erase(kb: KnowledgeBase) -> None:
    for i in range(6):
        kb.upsert_document(
            "port", f"d{i}", f"Harbour crane {i}: the crane schedule of pier {i}, crane oil."
        )
    kb.upsert_document(
        "port",
        "secret",
        f"The customer wrote {MARKER} about cranes.",
        title=f"Ticket {MARKER}",
        metadata={"subject": "person-x"},
    )
    assert_in_step(kb.store)
    kb.upsert_document("port", "d1", "Ticket office opening hours, ticket prices.")  # re-index
    assert_in_step(kb.store)
    assert {r[1] for r in _of(kb, "d1")} >= {"ticket", "offic"}
    assert "crane" not in {r[1] for r in _of(kb, "d1")}
    assert kb.delete_document("port", "d2")
    assert_in_step(kb.store)
    hits = kb.search("port", MARKER, "alice", ["x"], mode="bm25")
    assert [h.doc_id for h in hits] == ["secret"]
    erase(kb, "port", subject="person-x")
    assert_in_step(kb.store)
    assert not [r for r in rows(kb.store, HELD) if MARKER.lower()[:8] in str(r[1])]
    assert kb.search("port", MARKER, "alice", ["x"], mode="bm25") == []
    vacuum(kb, "port")  # rewrites the postings table too
    assert_in_step(kb.store)


def _of(kb: KnowledgeBase, doc_id: str) -> set[tuple[object, ...]]:
    return rows(
        kb.store,
        f"SELECT t.generation, t.lexeme, t.chunk_id, t.tf, t.len FROM {TERMS_TABLE} AS t "
        f"JOIN kb_chunks AS c ON c.id = t.chunk_id WHERE c.doc_id = '{doc_id}'",
    )


def test_a_store_without_postings_gets_them_once(kb: KnowledgeBase) -> None:
    for i in range(4):
        kb.upsert_document("port", f"d{i}", f"Harbour crane {i} and the north pier.")
    before = ranked(kb)
    with kb.store.engine.begin() as conn:  # as an earlier version left it
        conn.exec_driver_sql(f"DROP TABLE {TERMS_TABLE}")
        conn.exec_driver_sql("DROP FUNCTION kb_chunk_terms_sync() CASCADE")
    ensure_fts(kb.store.engine)
    assert_in_step(kb.store)
    ensure_fts(kb.store.engine)  # idempotent: no second copy
    assert_in_step(kb.store)
    assert ranked(kb) == before


def ranked(kb: KnowledgeBase) -> list[tuple[str, float]]:
    hits = kb.search("port", "crane pier", "a", ["x"], mode="bm25", k=4)
    return [(h.doc_id, h.score) for h in hits]
