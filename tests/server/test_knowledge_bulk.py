"""POST /knowledge/collections/{c}/bulk: NDJSON streamed in, one result per line, tenant-scoped."""

from __future__ import annotations

import json
from collections.abc import Iterator

from fastapi.testclient import TestClient

from .helpers import Keys

URL = "/api/v1/knowledge/collections/{}/bulk"
NDJSON = {"content-type": "application/x-ndjson"}


def stream(lines: list[object]) -> Iterator[bytes]:
    """The body in pieces that cut lines in half, as a network stream arrives."""
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    for i in range(0, len(body), 5):
        yield body[i : i + 5]


def test_bulk_writes_streamed_lines_with_per_item_results(client: TestClient, keys: Keys) -> None:
    op = {**Keys.header(keys.operator), **NDJSON}
    lines: list[object] = [
        {"doc_id": f"d{i}", "text": f"harbour crane number {i}"} for i in range(150)
    ]
    lines[10] = {"doc_id": "bad", "text": "NUL \u0000 here"}
    lines[20] = "just a string"
    lines.append({"op": "delete", "doc_id": "d0"})
    r = client.post(URL.format("bulk"), content=stream(lines), headers=op)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["lines"], out["stored"], out["erased"], out["error"]) == (151, 148, 1, 2)
    statuses = {i["line"]: i for i in out["items"]}
    assert len(statuses) == 151
    assert statuses[11]["status"] == "error"
    assert "NUL" in statuses[11]["error"]
    assert statuses[21]["status"] == "error"
    assert "JSON object" in statuses[21]["error"]
    assert statuses[151] == {
        "line": 151,
        "op": "delete",
        "doc_id": "d0",
        "status": "erased",
        "error": None,
    }
    hits = client.post(
        "/api/v1/knowledge/collections/bulk/search",
        json={"query": "crane number 7", "mode": "bm25", "k": 3},
        headers=Keys.header(keys.viewer),
    ).json()
    assert hits[0]["doc_id"] == "d7"

    # Viewers cannot write; another tenant cannot write into or erase from the collection.
    viewer = {**Keys.header(keys.viewer), **NDJSON}
    assert client.post(URL.format("bulk"), content=b"{}\n", headers=viewer).status_code == 403
    theirs = {**Keys.header(keys.other_admin), **NDJSON}
    for line in ({"doc_id": "d1", "text": "overwritten"}, {"op": "delete", "doc_id": "d1"}):
        r = client.post(URL.format("bulk"), content=json.dumps(line).encode(), headers=theirs)
        assert r.status_code == 409, r.text
    doc = client.post(
        "/api/v1/knowledge/collections/bulk/search",
        json={"query": "number 1", "mode": "bm25", "k": 1},
        headers=Keys.header(keys.viewer),
    ).json()
    assert doc[0]["text"] == "harbour crane number 1"

    # A request whose lines all fail creates no collection for the caller.
    r = client.post(URL.format("empty"), content=b"nonsense\n", headers=op)
    assert r.status_code == 200
    assert r.json()["error"] == 1
    names = [
        c["name"]
        for c in client.get(
            "/api/v1/knowledge/collections", headers=Keys.header(keys.viewer)
        ).json()
    ]
    assert names == ["bulk"]


def test_a_nul_character_is_a_clear_400_not_a_driver_error(client: TestClient, keys: Keys) -> None:
    """PostgreSQL text cannot hold NUL: the API says so (on SQLite too) instead of a 500."""
    op = Keys.header(keys.operator)
    for body in (
        {"doc_id": "a", "text": "x\u0000y"},
        {"doc_id": "a\u0000", "text": "x"},
        {"doc_id": "a", "text": "x", "title": "t\u0000"},
        {"doc_id": "a", "text": "x", "metadata": {"k": "v\u0000"}},
        {"doc_id": "a", "text": "x", "acl": ["group:st\u0000aff"]},
    ):
        r = client.put("/api/v1/knowledge/collections/nul/documents", json=body, headers=op)
        assert r.status_code == 400, (body, r.text)
        assert "NUL" in r.text or "ACL entry" in r.text
