"""BM25 with statistics of what the principal may read, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.embedders import HashingEmbedder
from daytwo.knowledge.fts import FTS_INDEX
from daytwo.knowledge.ingest import ANALYZE_AFTER
from daytwo.store import Store
from daytwo.store.tables.knowledge import KbChunk

PUBLIC = {
    "p1": "The harbour crane schedule for the north pier.",
    "p2": "Crane maintenance: the harbour crane is serviced monthly, crane oil changed.",
    "p3": "Opening hours of the ticket office.",
}


def scores(kb: KnowledgeBase, principal: str, groups: list[str]) -> dict[str, float]:
    hits = kb.search("port", "harbour crane", principal, groups, mode="bm25", k=10)
    return {h.doc_id: h.score for h in hits}


def test_private_documents_do_not_move_a_customers_scores(kb: KnowledgeBase) -> None:
    for doc_id, text in PUBLIC.items():
        kb.upsert_document("port", doc_id, text)
    before = scores(kb, "bob", ["customers"])
    assert set(before) == {"p1", "p2"}
    # Private documents full of the query terms, and another collection with them too.
    for i in range(30):
        kb.upsert_document(
            "port", f"s{i}", f"Staff note {i}: harbour crane crane harbour.", acl=["group:staff"]
        )
        kb.upsert_document("other", f"o{i}", "harbour crane harbour crane everywhere")
    after = scores(kb, "bob", ["customers"])
    assert after.keys() == before.keys()
    for doc_id, score in before.items():
        assert math.isclose(after[doc_id], score, rel_tol=1e-9), (doc_id, score, after[doc_id])
    # Staff read more, so their statistics (and scores of the same public chunks) differ.
    staff = scores(kb, "alice", ["staff"])
    assert len(staff) == 10
    assert not math.isclose(staff.get("p2", 0.0), before["p2"], rel_tol=1e-6)


def test_scores_are_bm25_of_the_permitted_set(kb: KnowledgeBase) -> None:
    for doc_id, text in PUBLIC.items():
        kb.upsert_document("port", doc_id, text)
    got = scores(kb, "bob", ["customers"])
    with kb.store.session() as s:
        lengths = dict(s.execute(sa.select(KbChunk.doc_id, KbChunk.token_count)).all())
    avg = sum(lengths.values()) / len(lengths)
    n_docs, k1, b = len(lengths), 1.2, 0.75
    tf = {"p1": {"harbour": 1, "crane": 1}, "p2": {"harbour": 1, "crane": 3}}
    df = {"harbour": 2, "crane": 2}
    for doc_id, freqs in tf.items():
        expected = 0.0
        for term, f in freqs.items():
            idf = math.log(1 + (n_docs - df[term] + 0.5) / (df[term] + 0.5))
            norm = k1 * (1 - b + b * lengths[doc_id] / avg)
            expected += idf * f * (k1 + 1) / (f + norm)
        assert math.isclose(got[doc_id], expected, rel_tol=1e-6), (doc_id, got, expected)
    assert got["p2"] > got["p1"]


@pytest.mark.postgres
def test_pg_bulk_ingest_merges_the_gin_pending_list(pg_url: str, tmp_path: Path) -> None:
    """A search scans the GIN index's pending list linearly: a bulk ingest merges it, and
    the list is capped at 256 kB between merges."""
    store = Store(pg_url)
    store.upgrade()
    kb = KnowledgeBase(store, tmp_path / "data", embedder=HashingEmbedder())
    try:
        folder = tmp_path / "docs"
        folder.mkdir()
        for i in range(ANALYZE_AFTER + 10):
            (folder / f"d{i}.txt").write_text(f"harbour crane {i} pier schedule ticket office")
        kb.ingest_path(folder, "port")
        with store.engine.connect() as conn:
            merged_now = conn.exec_driver_sql(
                f"SELECT gin_clean_pending_list('{FTS_INDEX}'::regclass)"
            ).scalar()
            options = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE oid = to_regclass(%(i)s)", {"i": FTS_INDEX}
            ).scalar()
        assert merged_now == 0  # nothing left for a search to scan linearly
        assert "gin_pending_list_limit=256" in options
        hits = kb.search("port", "crane pier", "bob", ["customers"], mode="bm25", k=5)
        assert len(hits) == 5
    finally:
        kb.close()
        store.dispose()
