"""Search: modes, contributions, ACL inside both searches, filters, odd queries, spans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.knowledge import search as search_module
from daytwo.knowledge.bulk import BulkWriter
from daytwo.store import Store

DOCS = {
    "refunds": "refunds are paid back to the original card within ten days",
    "shipping": "we ship parcels worldwide with express couriers",
    "passwords": "reset a forgotten password from the sign in page",
    "salaries": "salary bands and refunds of expenses for staff",
}


@pytest.fixture
def loaded(kb: KnowledgeBase) -> KnowledgeBase:
    for doc_id, text in DOCS.items():
        acl = ["group:hr"] if doc_id == "salaries" else None
        kb.upsert_document(
            "c",
            doc_id,
            text,
            title=doc_id.title(),
            metadata={"kind": doc_id[0]},
            acl=acl,
            private=acl is not None,
        )
    return kb


def test_modes_and_contributions(loaded: KnowledgeBase) -> None:
    bm25 = loaded.search("c", "refunds card", "ann", groups=["support"], mode="bm25")
    assert [h.doc_id for h in bm25] == ["refunds"]
    assert set(bm25[0].contributions) == {"bm25"}
    dense = loaded.search("c", "refunds card", "ann", groups=["support"], mode="dense", k=3)
    assert len(dense) == 3
    assert all(set(h.contributions) == {"dense"} for h in dense)
    hybrid = loaded.search("c", "refunds card", "ann", groups=["support"], mode="hybrid", k=3)
    assert hybrid[0].doc_id == "refunds"
    assert set(hybrid[0].contributions) == {"bm25", "dense"}
    assert hybrid[0].contributions["bm25"]["rank"] == 1.0
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_acl_private_default_deny_and_unknown_principal(loaded: KnowledgeBase) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        support = loaded.search("c", "salary refunds", "ann", groups=["support"], mode=mode, k=10)
        assert "salaries" not in {h.doc_id for h in support}
        hr = loaded.search("c", "salary refunds", "bo", groups=["hr"], mode=mode, k=10)
        assert "salaries" in {h.doc_id for h in hr}
        assert loaded.search("c", "salary refunds", "nobody", mode=mode) == []
        assert loaded.search("c", "salary refunds", "", mode=mode) == []
    loaded.upsert_document("c", "memo", "a memo for carl", acl=["user:carl"], private=True)
    assert next(h.doc_id for h in loaded.search("c", "memo carl", "carl", mode="bm25")) == "memo"
    # carl is known (an ACL names him) so he also sees documents for everyone
    assert "refunds" in {h.doc_id for h in loaded.search("c", "refunds", "carl", mode="bm25")}
    assert loaded.get_document("c", "memo").acl == ["user:carl"]  # type: ignore[union-attr]


def test_acl_never_shrinks_the_result_list(kb: KnowledgeBase) -> None:
    # 60 forbidden documents closer to the query than the 12 permitted ones.
    for i in range(60):
        kb.upsert_document("c", f"secret{i}", f"quarterly revenue numbers {i}", acl=["group:board"])
    for i in range(12):
        kb.upsert_document("c", f"public{i}", f"revenue blog post {i} about cats dogs birds")
    for mode in ("bm25", "dense", "hybrid"):
        hits = kb.search("c", "quarterly revenue numbers", "eve", groups=["staff"], mode=mode, k=10)
        assert len(hits) == 10, mode
        assert all(h.doc_id.startswith("public") for h in hits)


def test_metadata_filters(loaded: KnowledgeBase) -> None:
    hits = loaded.search("c", "refunds", "ann", groups=["hr"], mode="hybrid", filters={"kind": "s"})
    assert {h.doc_id for h in hits} == {"salaries", "shipping"}
    assert loaded.search("c", "refunds", "ann", groups=["hr"], filters={"kind": "zzz"}) == []


def test_empty_huge_and_odd_queries(loaded: KnowledgeBase) -> None:
    for mode in ("bm25", "dense", "hybrid"):
        assert loaded.search("c", "", "ann", groups=["support"], mode=mode) == []
        assert loaded.search("c", "   ", "ann", groups=["support"], mode=mode) == []
        huge = ("refunds card " * 800)[:10_000]
        assert loaded.search("c", huge, "ann", groups=["support"], mode=mode)[0].doc_id == "refunds"
        odd = "refunds\" OR (NEAR* -:^ AND «ünïcode» '; DROP TABLE kb_chunks; --"
        odd_hits = loaded.search("c", odd, "ann", groups=["support"], mode=mode)
        assert odd_hits
        if mode == "bm25":  # the hashing embedder keeps punctuation in its words
            assert odd_hits[0].doc_id == "refunds"
        assert "refunds" in {h.doc_id for h in odd_hits}
    assert loaded.search("c", "the of and", "ann", groups=["support"], mode="bm25") is not None


def test_bad_search_input(loaded: KnowledgeBase) -> None:
    with pytest.raises(InputError, match="unknown search mode"):
        loaded.search("c", "x", "ann", mode="semantic")
    with pytest.raises(InputError, match="out of range"):
        loaded.search("c", "x", "ann", k=0)
    with pytest.raises(NotFoundError, match="does not exist"):
        loaded.search("missing", "x", "ann")


def test_fusion_is_configurable_per_collection(loaded: KnowledgeBase) -> None:
    assert loaded.set_fusion("c", method="rrf", rrf_k=10).method == "rrf"
    hits = loaded.search("c", "refunds card", "ann", groups=["support"], k=2)
    assert hits[0].doc_id == "refunds"
    assert hits[0].score == pytest.approx(1 / 11 + 1 / 11)
    with pytest.raises(InputError, match="unknown fusion"):
        loaded.set_fusion("c", method="max")
    with pytest.raises(InputError, match="unknown fusion setting"):
        loaded.set_fusion("c", beta=1)
    assert loaded.stats("c")["collections"][0]["fusion"]["rrf_k"] == 10


def test_retrieval_and_embedding_spans(loaded: KnowledgeBase) -> None:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    loaded.search("c", "refunds", "ann", groups=["support"], mode="hybrid")
    spans = {s.name: s for s in exporter.get_finished_spans()}
    retrieve = spans["retrieve c"]
    assert retrieve.attributes is not None
    assert retrieve.attributes["gen_ai.operation.name"] == "retrieval"
    assert retrieve.attributes["daytwo.kb.mode"] == "hybrid"
    assert retrieve.attributes["daytwo.kb.hits"] >= 1  # type: ignore[operator]
    assert [e.name for e in retrieve.events] == ["daytwo.decision"]
    embed = spans["embeddings hashing-384"]
    assert embed.attributes is not None
    assert embed.attributes["gen_ai.operation.name"] == "embeddings"


def test_stats(loaded: KnowledgeBase) -> None:
    stats = loaded.stats()
    (c,) = stats["collections"]
    assert c["documents"] == 4
    assert c["private_documents"] == 1
    (gen,) = c["generations"]
    assert gen["state"] == "active"
    assert gen["chunks"] == 4
    assert gen["embedder"] == "hashing-384"
    with pytest.raises(NotFoundError):
        loaded.stats("missing")


def test_nul_in_a_principal_or_group_is_a_clear_input_error(kb: KnowledgeBase) -> None:
    """PostgreSQL text cannot hold NUL: one clear InputError, not a driver error (issue 20)."""
    kb.upsert_document("nul", "a", "some text")
    with pytest.raises(InputError, match="NUL"):
        kb.search("nul", "text", "bob", ["cust\x00omers"])
    with pytest.raises(InputError, match="NUL"):
        kb.search("nul", "text", "b\x00ob", [])
    with pytest.raises(InputError, match="not user:<name>"):
        kb.upsert_document("nul", "b", "x", acl=["group:st\x00aff"])


def _acl_reads(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """(node type, rows read) of every kb_acl scan in an EXPLAIN (ANALYZE, FORMAT JSON) plan."""
    found = []
    if plan.get("Relation Name") == "kb_acl":
        rows = plan.get("Actual Rows", 0) + plan.get("Rows Removed by Filter", 0)
        found.append((str(plan["Node Type"]), int(rows * plan.get("Actual Loops", 1))))
    for child in plan.get("Plans", []):
        found.extend(_acl_reads(child))
    return found


@pytest.mark.postgres
@pytest.mark.parametrize("documents", [1500, 900])
def test_a_search_straight_after_a_bulk_load_probes_the_acl_per_chunk(
    pg_url: str, tmp_path: Path, documents: int
) -> None:
    """PostgreSQL: the ACL test of a page's chunks stays a probe by (collection, doc_id)
    right after a bulk load into a new collection, before autovacuum ever ran: the write
    path analyzes the tables that have no statistics (every thousand chunks, and at the
    end of a bulk load: 900 documents never reach the first look), and the statement
    cannot be planned as a join over the collection's whole ACL (47 ms per search at
    2,000 documents). (At a few hundred documents the ACL is a few pages, and a scan of
    it per chunk is what the planner picks with or without statistics.)"""
    store = Store(pg_url)
    store.upgrade()
    kb = KnowledgeBase(store, tmp_path / "data", embedder=HashingEmbedder())
    try:
        writer = BulkWriter(kb, "fresh")
        lines = [
            json.dumps(
                {"doc_id": f"d{i}", "text": f"harbour crane {i} lifts containers", "acl": acl}
            ).encode()
            for i in range(documents)
            for acl in ([["group:dock"]] if i % 3 else [["group:office"]])
        ]
        results = writer.feed(lines) + writer.finish()
        assert {r.status for r in results} == {"stored"}
        hits = kb.search("fresh", "harbour crane 7", "ann", ["dock"], mode="bm25", k=5)
        assert hits
        assert all(int(h.doc_id[1:]) % 3 for h in hits)  # the office's documents stay hidden
        with store.engine.connect() as conn:
            pks = list(
                conn.exec_driver_sql(
                    "SELECT id FROM kb_chunks WHERE collection = 'fresh' ORDER BY id LIMIT 30"
                ).scalars()
            )
            (plan,) = conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + search_module._PG_VISIBLE_ROWS,
                {"pks": pks, "c": "fresh", "entries": ["user:ann", "group:dock"]},
            ).scalar_one()
        reads = _acl_reads(plan["Plan"])
        assert reads, plan
        assert all(kind != "Seq Scan" for kind, _ in reads), reads
        assert sum(rows for _, rows in reads) <= 2 * len(pks), reads
    finally:
        kb.close()
        store.dispose()
