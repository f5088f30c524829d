"""The reranking stage over the TEI /rerank protocol, against the scripted server."""

from __future__ import annotations

import pytest

from daytwo.exceptions import TransportError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.rerank import TeiReranker
from daytwo.testing.rerank_server import ScriptedRerankServer

DOCS = {
    "a": "Harbour crane schedule for the north pier",
    "b": "Harbour crane maintenance, crane oil and harbour crane parts",
    "c": "Harbour opening hours",
}


def test_rerank_reorders_the_permitted_hits_only(kb: KnowledgeBase) -> None:
    for doc_id, text in DOCS.items():
        kb.upsert_document("port", doc_id, text)
    kb.upsert_document("port", "secret", "Harbour crane salaries.", acl=["group:staff"])
    plain = kb.search("port", "harbour crane", "bob", ["customers"], mode="bm25", k=3)
    assert [h.doc_id for h in plain][:2] == ["b", "a"]
    # The scripted cross-encoder prefers the hours, then the schedule.
    scores = {DOCS["c"]: 0.9, DOCS["a"]: 0.5, DOCS["b"]: 0.1}
    with ScriptedRerankServer(scores=scores) as server:
        reranker = TeiReranker(server.url)
        hits = kb.search(
            "port", "harbour crane", "bob", ["customers"], mode="bm25", k=2, reranker=reranker
        )
        assert [h.doc_id for h in hits] == ["c", "a"]
        assert hits[0].score == pytest.approx(0.9)
        assert hits[0].contributions["rerank"] == {"score": 0.9, "rank": 1}
        assert hits[0].contributions["fused"]["rank"] == 3
        # The reranker saw the principal's hits, never the staff-only document.
        sent = [t for r in server.requests for t in r["texts"]]
        assert sorted(sent) == sorted(DOCS.values())
        reranker.close()


def test_a_failing_reranker_is_a_transport_error(kb: KnowledgeBase) -> None:
    kb.upsert_document("port", "a", DOCS["a"])
    with ScriptedRerankServer(status=503) as server:
        reranker = TeiReranker(server.url)
        with pytest.raises(TransportError, match="reranker"):
            kb.search("port", "crane", "bob", ["x"], mode="bm25", reranker=reranker)
        reranker.close()
