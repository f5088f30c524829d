"""The reranking stage over the TEI /rerank protocol, against the scripted server."""

from __future__ import annotations

import dataclasses

import pytest

from daytwo.exceptions import InputError, TransportError
from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.knowledge.rerank import TeiReranker
from daytwo.knowledge.search import SearchRequest
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


def _named(kb: KnowledgeBase, url: str) -> KnowledgeBase:
    return KnowledgeBase(kb.store, kb.data_dir, HashingEmbedder(), rerankers={"lex": url})


def test_a_search_request_names_a_configured_reranker_and_pages_its_order(
    kb: KnowledgeBase,
) -> None:
    for doc_id, text in DOCS.items():
        kb.upsert_document("port", doc_id, text)
    scores = {DOCS["c"]: 0.9, DOCS["a"]: 0.5, DOCS["b"]: 0.1}
    with ScriptedRerankServer(scores=scores) as server:
        named = _named(kb, server.url)
        base = SearchRequest("port", "harbour crane", "bob", ("x",), "bm25", 2, rerank="lex")
        first = named.run(base)
        assert [h.doc_id for h in first] == ["c", "a"]
        assert first[0].contributions["rerank"]["rank"] == 1
        assert first.next_cursor is not None
        second = named.run(dataclasses.replace(base, cursor=first.next_cursor))
        assert [h.doc_id for h in second] == ["b"]
        assert second.next_cursor is None
        # The depth and the reranker are part of the search: a cursor does not carry over.
        for other in (
            dataclasses.replace(base, cursor=first.next_cursor, rerank_depth=10),
            dataclasses.replace(base, cursor=first.next_cursor, rerank=None),
        ):
            with pytest.raises(InputError, match="belongs to another search"):
                named.run(other)
        # rerank_depth bounds what is rescored: with 2, the last hit is never seen.
        server.requests.clear()
        shallow = named.run(dataclasses.replace(base, k=1, rerank_depth=2))
        assert [len(r["texts"]) for r in server.requests] == [2]
        assert [h.doc_id for h in shallow] == ["a"]  # of b, a: the scripted order prefers a


def test_reranker_names_are_checked_and_never_urls(kb: KnowledgeBase) -> None:
    kb.upsert_document("port", "a", DOCS["a"])
    with ScriptedRerankServer() as server:
        named = _named(kb, server.url)
        with pytest.raises(InputError, match="unknown reranker 'other'") as info:
            named.run(SearchRequest("port", "crane", "bob", ("x",), rerank="other"))
        assert "lex" in (info.value.hint or "")
        with pytest.raises(InputError, match="not valid"):
            SearchRequest("port", "crane", "bob", ("x",), rerank=server.url)
        with pytest.raises(InputError, match="more than rerank_depth"):
            SearchRequest("port", "crane", "bob", ("x",), k=20, rerank="lex", rerank_depth=10)
        with pytest.raises(InputError, match="rerank_depth=0"):
            SearchRequest("port", "crane", "bob", ("x",), k=1, rerank="lex", rerank_depth=0)
        assert server.requests == []


def test_a_named_reranker_that_fails_names_itself_not_its_url(kb: KnowledgeBase) -> None:
    kb.upsert_document("port", "a", DOCS["a"])
    with ScriptedRerankServer(status=503) as server:
        named = _named(kb, server.url)
        with pytest.raises(TransportError, match=r"reranker lex failed: HTTP 503") as info:
            named.run(SearchRequest("port", "crane", "bob", ("x",), rerank="lex"))
        assert server.url not in str(info.value)


def test_a_rerank_deeper_than_the_servers_batch_limit_goes_in_several_requests(
    kb: KnowledgeBase,
) -> None:
    texts = [f"harbour crane note number {i}" for i in range(50)]
    for i, text in enumerate(texts):
        kb.upsert_document("port", f"d{i:02}", text)
    # The last documents score best: the order must survive being split into requests.
    scores = {text: i / 100 for i, text in enumerate(texts)}
    with ScriptedRerankServer(scores=scores, max_batch=32) as server:
        named = _named(kb, server.url)
        request = SearchRequest(
            "port", "harbour crane", "bob", ("x",), "bm25", 5, rerank="lex", rerank_depth=50
        )
        hits = named.run(request)
        assert [h.doc_id for h in hits] == ["d49", "d48", "d47", "d46", "d45"]
        assert [len(r["texts"]) for r in server.requests] == [32, 18]
    # A server that refuses the batch (TEI's 422) is the reranker's error, not a crash.
    with ScriptedRerankServer(scores=scores, max_batch=8) as server:
        reranker = TeiReranker(server.url, max_batch=16)
        with pytest.raises(TransportError, match="reranker"):
            kb.search("port", "harbour crane", "bob", ["x"], mode="bm25", k=20, reranker=reranker)
        reranker.close()
