"""Keyword options: boolean syntax with phrases, title boost and highlights with offsets,
the same answers on SQLite and PostgreSQL; malformed queries are one clear error."""

from __future__ import annotations

import re
from typing import Any

import pytest

from daytwo.exceptions import InputError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.keyword_query import KeywordOptions
from daytwo.knowledge.search import SearchRequest

DOCS = {
    "a": ("Refunds", "Refunds go back to the original card within five days."),
    "b": ("Bank transfer", "We pay refunds by bank transfer when no card was used."),
    "c": ("Vouchers", "A refund as a voucher: the bank is not involved."),
    "d": ("Shipping", "Orders ship from the warehouse; transfer of bank details is never asked."),
}


@pytest.fixture
def small(kb: KnowledgeBase) -> KnowledgeBase:
    for doc_id, (title, text) in DOCS.items():
        kb.upsert_document("c", doc_id, text, title=title)
    return kb


def search(kb: KnowledgeBase, query: str, mode: str = "bm25", **kw: Any) -> list[Any]:
    request = SearchRequest("c", query, "ann", ("staff",), mode, 10, keyword=KeywordOptions(**kw))
    return list(kb.run(request))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"bank transfer"', {"b"}),  # d has both words, not as a phrase
        ("bank transfer", {"b", "c", "d"}),
        ("refund AND card", {"a", "b"}),
        ("refund -voucher", {"a", "b"}),
        ("refund NOT voucher", {"a", "b"}),
        ("refund NOT (card OR voucher)", set()),
        ('(ship OR "original card") AND NOT asked', {"a"}),
        ("refunds OR warehouse", {"a", "b", "c", "d"}),
        ('"bank details" OR vouchers', {"c", "d"}),
    ],
)
def test_boolean_syntax(small: KnowledgeBase, query: str, expected: set[str]) -> None:
    assert {h.doc_id for h in search(small, query, syntax="boolean")} == expected
    hybrid = search(small, query, "hybrid", syntax="boolean")
    assert expected <= {h.doc_id for h in hybrid}  # the dense half adds, never removes


def test_title_boost_moves_title_matches_up(small: KnowledgeBase) -> None:
    plain = [h.doc_id for h in search(small, "bank", syntax="boolean")]
    body_only = search(small, "bank", title_boost=0.0)
    boosted = [h.doc_id for h in search(small, "bank", title_boost=5.0)]
    assert boosted[0] == "b"
    assert boosted.index("b") <= plain.index("b")
    by_doc = {h.doc_id: h.score for h in body_only}
    boosted_scores = {h.doc_id: h.score for h in search(small, "bank", title_boost=5.0)}
    assert boosted_scores["b"] > by_doc["b"]
    assert set(by_doc) == {"b", "c", "d"}


def test_highlights_are_character_offsets(small: KnowledgeBase) -> None:
    hits = search(small, "refunds card", highlight=True)
    for hit in hits:
        assert hit.highlights
        for mark in hit.highlights:
            value = hit.title if mark.field == "title" else hit.text
            word = value[mark.start : mark.end].lower()
            assert word.startswith(("refund", "card")), word
    a = next(h for h in hits if h.doc_id == "a")
    assert [(m.field, m.start, m.end) for m in a.highlights] == [
        ("title", 0, 7),
        ("text", 0, 7),
        ("text", 32, 36),
    ]
    negated = search(small, "refund -card", syntax="boolean", highlight=True)
    assert all("card" not in h.text[m.start : m.end] for h in negated for m in h.highlights)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"bank transfer', "unterminated phrase"),
        ("refund AND", "expects a word, phrase or ( but found the end"),
        ("(refund OR card", "a parenthesis is not closed"),
        ("refund)", "unexpected ')'"),
        ("-refund", "only excludes terms"),
        ('""', "empty phrase"),
        (" OR ".join(f"w{i}" for i in range(70)), "more than 64 terms"),
    ],
)
def test_malformed_boolean_queries(query: str, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        SearchRequest("c", query, "ann", (), "bm25", 5, keyword=KeywordOptions("boolean"))


def test_bad_keyword_options() -> None:
    with pytest.raises(InputError, match="unknown query syntax"):
        KeywordOptions("lucene")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="outside"):
        KeywordOptions(title_boost=11.0)


def test_boolean_requirements_and_exclusions_hold_for_the_dense_half(kb: KnowledgeBase) -> None:
    docs = {
        "card": "refund by card within five days",
        "voucher": "refund as a voucher for the shop",
        "both": "card refund or voucher, as you like",
        "other": "opening hours of the harbour shop",
    }
    for doc_id, text in docs.items():
        kb.upsert_document("h", doc_id, text)
    boolean = KeywordOptions(syntax="boolean")

    def found(query: str, mode: str = "hybrid", **kw: Any) -> dict[str, set[str]]:
        request = SearchRequest("h", query, "bob", ("x",), mode, 10, keyword=kw.get("kw"))
        return {h.doc_id: set(h.contributions) for h in kb.run(request)}

    # Plain syntax: the dense half ranks every chunk, the voucher ones too.
    assert {"voucher", "both"} <= set(found("refund voucher"))
    # NOT excludes from both halves; the OR terms do not restrict the dense half, so a
    # chunk without "refund" still comes from it alone.
    hits = found("refund -voucher", kw=boolean)
    assert set(hits) == {"card", "other"}
    assert hits["other"] == {"dense"}
    assert set(found("refund -voucher", "dense", kw=boolean)) == {"card", "other"}
    # AND requires the terms in the dense half too.
    assert set(found("refund AND card", kw=boolean)) == {"card", "both"}
    assert set(found('"refund by card" OR hours', kw=boolean)) == set(docs)  # alternatives
    assert set(found("(refund AND card) -voucher", kw=boolean)) == {"card"}
