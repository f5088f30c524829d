"""REST search options: typed filters, fusion, grouping, cursors; bad input as a 4xx naming
the problem; cursors and filters never cross principals or tenants."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from daytwo.server.routes.knowledge import NEXT_CURSOR

from .helpers import Keys

URL = "/api/v1/knowledge/collections/{}/search"


def _load(client: TestClient, keys: Keys, collection: str = "q") -> None:
    op = Keys.header(keys.operator)
    long = " ".join(f"filler{i}" for i in range(300))
    for i in range(6):
        r = client.put(
            f"/api/v1/knowledge/collections/{collection}/documents",
            json={
                "doc_id": f"d{i}",
                "title": f"Doc {i}",
                "text": f"refund policy {i} {long} refund policy again {long} refund",
                "metadata": {
                    "year": 2018 + i,
                    "lang": "de" if i % 2 else "en",
                    "day": f"2024-0{i + 1}-01",
                },
            },
            headers=op,
        )
        assert r.status_code == 200, r.text


def _search(client: TestClient, key: str, body: dict[str, Any], collection: str = "q") -> Any:
    return client.post(URL.format(collection), json=body, headers=Keys.header(key))


def test_rest_typed_filters(client: TestClient, keys: Keys) -> None:
    _load(client, keys)
    flt = {
        "must": [{"key": "year", "range": {"gte": 2020}}],
        "must_not": [{"key": "lang", "match": {"value": "de"}}],
        "should": [
            {"key": "day", "range": {"gte": "2024-05-01"}},
            {"key": "year", "match": {"any": [2020]}},
        ],
    }
    for mode in ("bm25", "dense", "hybrid"):
        r = _search(client, keys.viewer, {"query": "refund", "mode": mode, "k": 20, "filters": flt})
        assert r.status_code == 200, r.text
        assert {h["doc_id"] for h in r.json()} == {"d2", "d4"}, mode


def test_rest_bad_search_input_is_a_4xx_naming_it(client: TestClient, keys: Keys) -> None:
    _load(client, keys)
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"filters": {"must": [{"key": "year", "range": {"gte": "soon"}}]}}, 400, "range.gte"),
        ({"filters": {"lang": ["de"]}}, 400, "flat form takes scalar values only"),
        ({"filters": {"must": [{"key": "x", "near": 1}]}}, 400, "exactly one of match"),
        ({"fusion": {"method": "max"}}, 400, "unknown fusion method"),
        ({"fusion": {"alpha": "x"}}, 400, "fusion alpha must be a number"),
        ({"group_by": "page"}, 422, "group_by"),
        ({"group_size": 2}, 400, "group_size needs group_by"),
        ({"cursor": "garbage"}, 400, "not one this server issued"),
    ]
    for extra, status, message in bad:
        r = _search(client, keys.viewer, {"query": "refund", **extra})
        assert r.status_code == status, (extra, r.text)
        assert message in r.text, (extra, r.text)
        assert "Traceback" not in r.text


def test_rest_grouping_fusion_and_cursor_pages(client: TestClient, keys: Keys) -> None:
    _load(client, keys)
    body: dict[str, Any] = {"query": "refund policy", "group_by": "document", "group_size": 2}
    whole = _search(client, keys.viewer, {**body, "k": 50}).json()
    assert sorted(h["doc_id"] for h in whole) == [f"d{i}" for i in range(6)]
    assert all(1 <= len(h["chunks"]) <= 2 for h in whole)
    assert any(len(h["chunks"]) == 2 for h in whole)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        r = _search(client, keys.viewer, {**body, "k": 4, "cursor": cursor})
        assert r.status_code == 200, r.text
        seen += [h["doc_id"] for h in r.json()]
        cursor = r.headers.get(NEXT_CURSOR)
        if cursor is None:
            break
    assert seen == [h["doc_id"] for h in whole]
    convex = _search(
        client, keys.viewer, {"query": "refund", "fusion": {"method": "convex", "alpha": 1.0}}
    ).json()
    assert convex[0]["score"] == 1.0
    plain = _search(client, keys.viewer, {"query": "refund"}).json()
    assert plain[0]["score"] < 0.05
    assert plain[0]["chunks"] is None


def test_rest_cursor_stays_with_its_caller_and_collection(client: TestClient, keys: Keys) -> None:
    _load(client, keys)
    r = _search(client, keys.operator, {"query": "refund", "k": 2})
    cursor = r.headers[NEXT_CURSOR]
    # the same tenant's viewer is another principal: refused
    r = _search(client, keys.viewer, {"query": "refund", "k": 2, "cursor": cursor})
    assert r.status_code == 400
    assert "belongs to another search" in r.text
    # another tenant with a collection of its own: refused there, and ours stays 404
    r = client.put(
        "/api/v1/knowledge/collections/theirs/documents",
        json={"doc_id": "t1", "text": "refund policy", "metadata": {"year": 2020}},
        headers=Keys.header(keys.other_admin),
    )
    assert r.status_code == 200, r.text
    body = {"query": "refund", "k": 2, "cursor": cursor}
    r = _search(client, keys.other_admin, body, "theirs")
    assert r.status_code == 400
    assert "belongs to another search" in r.text
    assert _search(client, keys.other_admin, body, "q").status_code == 404
    # a filter cannot reach the other tenant's documents
    flt = {"must": [{"key": "year", "match": {"value": 2020}}]}
    hits = _search(client, keys.viewer, {"query": "refund", "filters": flt, "k": 50}).json()
    assert {h["doc_id"] for h in hits} == {"d2"}
    theirs = _search(client, keys.other_viewer, {"query": "refund", "filters": flt}, "theirs")
    assert [h["doc_id"] for h in theirs.json()] == ["t1"]


def test_rest_keyword_options(client: TestClient, keys: Keys) -> None:
    op = Keys.header(keys.operator)
    for doc_id, title, text in (
        ("b", "Bank transfer", "We pay refunds by bank transfer."),
        ("d", "Shipping", "Transfer of bank details is never asked."),
    ):
        r = client.put(
            "/api/v1/knowledge/collections/kw/documents",
            json={"doc_id": doc_id, "title": title, "text": text},
            headers=op,
        )
        assert r.status_code == 200, r.text
    body = {"query": '"bank transfer"', "mode": "bm25", "keyword": {"syntax": "boolean"}}
    hits = _search(client, keys.viewer, body, "kw").json()
    assert [h["doc_id"] for h in hits] == ["b"]
    assert hits[0]["highlights"] is None
    body["keyword"] = {"syntax": "boolean", "highlight": True, "title_boost": 2.0}
    hit = _search(client, keys.viewer, body, "kw").json()[0]
    assert {(m["field"], m["start"], m["end"]) for m in hit["highlights"]} == {
        ("title", 0, 4),
        ("title", 5, 13),
        ("text", 18, 22),
        ("text", 23, 31),
    }
    for keyword, status, message in (
        ({"syntax": "boolean"}, 400, "unterminated phrase"),
        ({"syntax": "lucene"}, 422, "syntax"),
        ({"title_boost": 50}, 422, "title_boost"),
    ):
        r = _search(client, keys.viewer, {"query": '"bank', "keyword": keyword}, "kw")
        assert r.status_code == status, r.text
        assert message in r.text
