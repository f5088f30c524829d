"""The query API: typed filters inside both index paths, grouping by document, cursors,
per-query fusion; on SQLite and PostgreSQL, with bad input as one clear error."""

from __future__ import annotations

from typing import Any

import pytest

from daytwo.exceptions import InputError, UserError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.filters import parse_filter
from daytwo.knowledge.fusion import FusionConfig
from daytwo.knowledge.search import SearchRequest

MODES = ("bm25", "dense", "hybrid")

DOCS: list[tuple[str, dict[str, Any]]] = [
    ("a", {"year": 2019, "lang": "en", "published": "2019-05-01", "draft": False, "n": "1"}),
    ("b", {"year": 2020, "lang": "de", "published": "2020-02-29T12:00:00Z", "draft": True}),
    ("c", {"year": 2021.5, "lang": "fr", "published": "2021-12-31", "owner": "ann", "n": 1}),
    ("d", {"year": 2023, "lang": "de", "published": "2023-01-01T00:00:00+02:00", "tags": ["x"]}),
    ("e", {"lang": "en", "owner": "bob"}),
]


@pytest.fixture
def typed(kb: KnowledgeBase) -> KnowledgeBase:
    for doc_id, meta in DOCS:
        kb.upsert_document("t", doc_id, f"refund policy document {doc_id}", metadata=meta)
    return kb


def ids(kb: KnowledgeBase, flt: Any, mode: str = "hybrid", **kw: Any) -> set[str]:
    request = SearchRequest("t", "refund policy", "ann", ("staff",), mode, 50, flt, **kw)
    return {h.doc_id for h in kb.run(request)}


CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"lang": "de"}, {"b", "d"}),
    ({"must": [{"key": "lang", "match": {"value": "de"}}]}, {"b", "d"}),
    ({"must": [{"key": "lang", "match": {"any": ["fr", "en"]}}]}, {"a", "c", "e"}),
    ({"must": [{"key": "lang", "match": {"except": ["de"]}}]}, {"a", "c", "e"}),
    ({"must_not": [{"key": "lang", "match": {"value": "de"}}]}, {"a", "c", "e"}),
    ({"must": [{"key": "year", "range": {"gte": 2020, "lt": 2023}}]}, {"b", "c"}),
    ({"must": [{"key": "year", "range": {"gt": 2021.5}}]}, {"d"}),
    ({"must": [{"key": "year", "range": {"lte": 2021.5}}]}, {"a", "b", "c"}),
    ({"must": [{"key": "year", "match": {"value": 2020.0}}]}, {"b"}),
    # dates compare instants: 2023-01-01T00:00+02:00 is 2022-12-31T22:00Z
    (
        {"must": [{"key": "published", "range": {"gte": "2020-01-01", "lt": "2023-01-01"}}]},
        {
            "b",
            "c",
            "d",
        },
    ),
    ({"must": [{"key": "published", "range": {"lt": "2020-02-29T12:00:01Z"}}]}, {"a", "b"}),
    ({"must": [{"key": "published", "match": {"value": "2021-12-31T00:00:00Z"}}]}, {"c"}),
    ({"must": [{"key": "draft", "match": {"value": True}}]}, {"b"}),
    ({"must": [{"key": "draft", "match": {"value": "true"}}]}, set()),  # typed: not a bool
    ({"must": [{"key": "n", "match": {"value": 1}}]}, {"c"}),  # the number, not "1"
    ({"must": [{"key": "n", "match": {"value": "1"}}]}, {"a"}),
    ({"must": [{"key": "owner", "exists": True}]}, {"c", "e"}),
    ({"must": [{"key": "owner", "exists": False}]}, {"a", "b", "d"}),
    ({"must": [{"key": "tags", "exists": True}]}, set()),  # lists are not indexed
    (
        {
            "should": [
                {"key": "owner", "match": {"value": "bob"}},
                {"key": "year", "range": {"gte": 2023}},
            ]
        },
        {"d", "e"},
    ),
    (
        {
            "must": [
                {"key": "lang", "match": {"any": ["de", "en"]}},
                {
                    "should": [
                        {"key": "draft", "match": {"value": True}},
                        {"must_not": [{"key": "year", "exists": True}]},
                    ]
                },
            ]
        },
        {"b", "e"},
    ),
]


@pytest.mark.parametrize(("flt", "expected"), CASES)
def test_typed_filters_in_every_mode(
    typed: KnowledgeBase, flt: dict[str, Any], expected: set[str]
) -> None:
    for mode in MODES:
        assert ids(typed, flt, mode) == expected, (mode, flt)


def test_filters_follow_document_updates(typed: KnowledgeBase) -> None:
    flt = {"must": [{"key": "year", "range": {"gte": 2023}}]}
    assert ids(typed, flt) == {"d"}
    typed.upsert_document("t", "d", "refund policy document d", metadata={"year": "2024"})
    assert ids(typed, flt) == set()  # now a string: ranges compare numbers only
    typed.upsert_document("t", "e", "refund policy document e", metadata={"year": 2030})
    assert ids(typed, flt) == {"e"}


def test_filtered_search_returns_k_when_k_match(kb: KnowledgeBase) -> None:
    """The rare matches rank below 40 strong non-matches; every mode still fills k."""
    for i in range(40):
        kb.upsert_document("t", f"strong{i}", "refund refund policy refund", metadata={"n": i})
    for i in range(12):
        kb.upsert_document(
            "t",
            f"weak{i}",
            f"a long note on shipping, returns and one refund {i}",
            metadata={"rare": True, "n": 100 + i},
        )
    flt = {"must": [{"key": "rare", "match": {"value": True}}]}
    for mode in MODES:
        request = SearchRequest("t", "refund policy", "ann", ("staff",), mode, 10, flt)
        hits = kb.run(request)
        assert len(hits) == 10, mode
        assert all(h.doc_id.startswith("weak") for h in hits)


def test_filters_stay_under_the_acl(kb: KnowledgeBase) -> None:
    kb.upsert_document("t", "open", "refund policy", metadata={"k": 1})
    kb.upsert_document("t", "hr", "refund policy", metadata={"k": 1}, acl=["group:hr"])
    flt = {"must": [{"key": "k", "match": {"value": 1}}]}
    for mode in MODES:
        staff = kb.run(SearchRequest("t", "refund", "ann", ("staff",), mode, 10, flt))
        assert [h.doc_id for h in staff] == ["open"]
        hr = kb.run(SearchRequest("t", "refund", "ann", ("hr",), mode, 10, flt))
        assert {h.doc_id for h in hr} == {"open", "hr"}


BAD_FILTERS: list[tuple[Any, str]] = [
    ([1], "a filter is a JSON object"),
    ({"lang": ["de"]}, "filter['lang']: the flat form takes scalar values only"),
    ({"must": {"key": "x"}}, "filter.must[0]: expected exactly one of match, range, exists"),
    ({"must": [{"match": {"value": 1}}]}, "filter.must[0] has no 'key'"),
    ({"must": [{"key": "", "exists": True}]}, "filter.must[0].key: a metadata key"),
    ({"must": [{"key": "x", "match": {"value": [1]}}]}, "filter.must[0].match.value: [1]"),
    ({"must": [{"key": "x", "match": {"eq": 1}}]}, "filter.must[0].match must be one of"),
    (
        {"must": [{"key": "x", "match": {"any": []}}]},
        "filter.must[0].match.any must be a non-empty",
    ),
    ({"must": [{"key": "x", "range": {"gte": "soon"}}]}, 'range.gte: "soon" is not a number'),
    ({"must": [{"key": "x", "range": {"gte": True}}]}, "range.gte: true is not a number"),
    ({"must": [{"key": "x", "range": {"from": 1}}]}, "range takes gt, gte, lt, lte"),
    (
        {"must": [{"key": "x", "range": {"gte": 1, "lt": "2024-01-01"}}]},
        "mixes a number and a date",
    ),
    ({"must": [{"key": "x", "exists": "yes"}]}, "exists must be true or false"),
    ({"must": [{"key": "x", "exists": True, "match": {"value": 1}}]}, "exactly one of"),
    ({"should": "x"}, "filter.should must be a list"),
    ({"must": [{"key": "x", "match": {"value": 1}}] * 101}, "more than 100 conditions"),
]


@pytest.mark.parametrize(("flt", "message"), BAD_FILTERS)
def test_bad_filters_name_the_problem(flt: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        SearchRequest("t", "q", "ann", (), "hybrid", 10, flt)
    assert message in str(info.value)


def test_deep_nesting_is_refused() -> None:
    flt: dict[str, Any] = {"key": "x", "exists": True}
    for _ in range(12):
        flt = {"must": [flt]}
    with pytest.raises(InputError, match="nest at most"):
        parse_filter(flt)


def test_filter_round_trips_through_its_canonical_form() -> None:
    for flt, _ in CASES:
        parsed = parse_filter(flt)
        assert parsed is not None
        again = parse_filter(parsed.to_dict())
        assert again is not None
        assert again.canonical() == parsed.canonical()


LONG = " ".join(f"word{i}" for i in range(500))


@pytest.fixture
def chunky(kb: KnowledgeBase) -> KnowledgeBase:
    """Documents of several chunks each, every chunk mentioning the query."""
    for d in range(8):
        text = " ".join(f"refund policy part {p} of doc{d} {LONG[:1200]}" for p in range(4))
        kb.upsert_document("t", f"doc{d}", text, metadata={"d": d})
    return kb


@pytest.mark.parametrize("mode", MODES)
def test_group_by_document(chunky: KnowledgeBase, mode: str) -> None:
    plain = chunky.run(SearchRequest("t", "refund policy", "ann", ("staff",), mode, 10))
    assert len({h.doc_id for h in plain}) < len(plain)  # chunks of one document repeat
    grouped = chunky.run(
        SearchRequest(
            "t", "refund policy", "ann", ("staff",), mode, 5, group_by="document", group_size=3
        )
    )
    assert len(grouped) == 5
    assert len({h.doc_id for h in grouped}) == 5
    for hit in grouped:
        assert 1 <= len(hit.chunks) <= 3
        assert hit.chunks[0].chunk_id == hit.chunk_id
        assert {c.doc_id for c in hit.chunks} == {hit.doc_id}
        assert [c.score for c in hit.chunks] == sorted((c.score for c in hit.chunks), reverse=True)
    assert [h.score for h in grouped] == sorted((h.score for h in grouped), reverse=True)
    assert any(len(h.chunks) == 3 for h in grouped)
    # the best document's best chunk is the plain search's best chunk
    assert grouped[0].chunk_id == plain[0].chunk_id
    flt = {"must": [{"key": "d", "range": {"gte": 6}}]}
    filtered = chunky.run(
        SearchRequest("t", "refund policy", "ann", ("staff",), mode, 5, flt, group_by="document")
    )
    assert {h.doc_id for h in filtered} == {"doc6", "doc7"}
    assert filtered.next_cursor is None


@pytest.mark.parametrize("grouped", [False, True])
def test_cursor_pages_are_the_one_ranking(chunky: KnowledgeBase, grouped: bool) -> None:
    extra: dict[str, Any] = {"group_by": "document"} if grouped else {}
    base = SearchRequest("t", "refund policy", "ann", ("staff",), "hybrid", 200, **extra)
    whole = chunky.run(base)
    pages: list[str] = []
    cursor = None
    for _ in range(20):
        request = SearchRequest(
            "t", "refund policy", "ann", ("staff",), "hybrid", 3, cursor=cursor, **extra
        )
        page = chunky.run(request)
        pages += [h.chunk_id for h in page]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [h.chunk_id for h in whole]
    assert len(pages) == (8 if grouped else len(whole))


def test_cursor_of_another_search_is_refused(chunky: KnowledgeBase) -> None:
    first = chunky.run(SearchRequest("t", "refund policy", "ann", ("staff",), "bm25", 2))
    cursor = first.next_cursor
    assert cursor is not None
    others = [
        SearchRequest("t", "refund", "ann", ("staff",), "bm25", 2, cursor=cursor),
        SearchRequest("t", "refund policy", "bob", ("staff",), "bm25", 2, cursor=cursor),
        SearchRequest("t", "refund policy", "ann", ("other",), "bm25", 2, cursor=cursor),
        SearchRequest("t", "refund policy", "ann", ("staff",), "dense", 2, cursor=cursor),
        SearchRequest("t", "refund policy", "ann", ("staff",), "bm25", 2, {"d": 1}, cursor=cursor),
    ]
    for request in others:
        with pytest.raises(InputError, match="belongs to another search"):
            chunky.run(request)
    with pytest.raises(InputError, match="not one this server issued"):
        chunky.run(
            SearchRequest("t", "refund policy", "ann", ("staff",), "bm25", 2, cursor="x" + cursor)
        )
    # same search, another k: accepted
    assert chunky.run(
        SearchRequest("t", "refund policy", "ann", ("staff",), "bm25", 5, cursor=cursor)
    )


def test_per_query_fusion(chunky: KnowledgeBase) -> None:
    def run(fusion: FusionConfig | None) -> list[Any]:
        request = SearchRequest("t", "refund doc3", "ann", ("staff",), "hybrid", 8, fusion=fusion)
        return list(chunky.run(request))

    for alpha, side in ((1.0, "dense"), (0.0, "bm25")):
        hits = run(FusionConfig("convex", alpha=alpha))
        assert hits[0].score == pytest.approx(1.0)  # min-max normalised, all weight on one side
        side_scores = [h.contributions[side]["score"] for h in hits if side in h.contributions]
        assert side_scores == sorted(side_scores, reverse=True)
    assert run(None)[0].score < 0.05  # the collection's default: RRF k=60
    scores = [
        chunky.run(
            SearchRequest(
                "t", "refund", "ann", ("staff",), "hybrid", 1, fusion=FusionConfig("rrf", rrf_k=r)
            )
        )[0].score
        for r in (1, 60)
    ]
    assert scores[0] > scores[1]
    dbsf = chunky.run(
        SearchRequest("t", "refund", "ann", ("staff",), "hybrid", 3, fusion=FusionConfig("dbsf"))
    )
    assert len(dbsf) == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"method": "max"}, "unknown fusion method"),
        ({"alpha": 2}, "outside [0, 1]"),
        ({"alpha": "high"}, "fusion alpha must be a number"),
        ({"rrf_k": 1.5}, "fusion rrf_k must be an integer"),
        ({"depth": 0}, "depth must be 1 to 10000"),
        ({"temperature": 1}, "unknown fusion setting"),
    ],
)
def test_bad_fusion(data: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        FusionConfig.from_dict(data)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"group_by": "chunk"}, "unknown group_by"),
        ({"group_by": "document", "group_size": 0}, "group_size=0"),
        ({"group_size": 2}, "group_size needs group_by"),
        ({"cursor": ""}, "the cursor is empty"),
    ],
)
def test_bad_request_options(kw: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        SearchRequest("t", "q", "ann", (), "hybrid", 10, **kw)
