"""REST reranking: a search names a reranker the operator configured, never a URL; the
reranker is called over real HTTP (the scripted TEI /rerank server); an unknown name is
a 4xx, a reranker that fails a 502 naming it (not its URL), and cursors page its order."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daytwo.server.routes.knowledge import NEXT_CURSOR
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing.rerank_server import ScriptedRerankServer

from .helpers import Keys

URL = "/api/v1/knowledge/collections/r/search"
DOCS = {
    "a": "harbour crane schedule for the north pier",
    "b": "harbour crane maintenance, crane oil and harbour crane parts",
    "c": "harbour opening hours",
}
SCORES = {DOCS["c"]: 0.9, DOCS["a"]: 0.5, DOCS["b"]: 0.1}


@pytest.fixture
def reranker() -> Iterator[ScriptedRerankServer]:
    with ScriptedRerankServer(scores=SCORES) as server:
        yield server


@pytest.fixture
def down() -> Iterator[ScriptedRerankServer]:
    with ScriptedRerankServer(status=503) as server:
        yield server


@pytest.fixture
def settings(
    tmp_path: Path, store: Store, reranker: ScriptedRerankServer, down: ScriptedRerankServer
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=store.url,
        embedder="hashing-384",
        rerankers={"lex": reranker.url, "broken": down.url, "gone": f"http://{_closed_port()}"},
    )


def _closed_port() -> str:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _load(client: TestClient, keys: Keys) -> None:
    for doc_id, text in DOCS.items():
        r = client.put(
            "/api/v1/knowledge/collections/r/documents",
            json={"doc_id": doc_id, "text": text},
            headers=Keys.header(keys.operator),
        )
        assert r.status_code == 200, r.text


def _search(client: TestClient, keys: Keys, body: dict[str, Any]) -> Any:
    return client.post(
        URL, json={"query": "harbour crane", **body}, headers=Keys.header(keys.viewer)
    )


def test_rest_rerank_by_name_pages_the_reranked_order(
    client: TestClient, keys: Keys, reranker: ScriptedRerankServer
) -> None:
    _load(client, keys)
    plain = _search(client, keys, {"mode": "bm25", "k": 3})
    assert [h["doc_id"] for h in plain.json()][:2] == ["b", "a"]
    first = _search(client, keys, {"mode": "bm25", "k": 2, "rerank": "lex"})
    assert first.status_code == 200, first.text
    assert [h["doc_id"] for h in first.json()] == ["c", "a"]
    assert first.json()[0]["score"] == pytest.approx(0.9)
    cursor = first.headers[NEXT_CURSOR]
    body = {"mode": "bm25", "k": 2, "rerank": "lex", "cursor": cursor}
    second = _search(client, keys, body)
    assert [h["doc_id"] for h in second.json()] == ["b"]
    assert NEXT_CURSOR not in second.headers
    assert sorted(reranker.requests[0]["texts"]) == sorted(DOCS.values())
    # The cursor belongs to the reranked search of that depth only.
    for other in ({"rerank_depth": 10}, {"rerank": None}):
        r = _search(client, keys, {**body, **other})
        assert r.status_code == 400, r.text
        assert "another search" in r.text


def test_rest_rerank_takes_names_never_urls(
    client: TestClient, keys: Keys, reranker: ScriptedRerankServer
) -> None:
    _load(client, keys)
    bad: list[tuple[dict[str, Any], int, str]] = [
        ({"rerank": "nope"}, 400, "unknown reranker 'nope'"),
        ({"rerank": reranker.url}, 422, "rerank"),
        ({"rerank": "lex", "rerank_depth": 500}, 422, "rerank_depth"),
        ({"rerank": "lex", "k": 20, "rerank_depth": 10}, 400, "more than rerank_depth"),
        ({"rerank_url": reranker.url}, 200, ""),  # not a field: ignored, nothing called
    ]
    for extra, status, message in bad:
        r = _search(client, keys, extra)
        assert r.status_code == status, (extra, r.text)
        assert message in r.text, (extra, r.text)
        assert reranker.url not in r.text
    assert reranker.requests == []


def test_rest_a_failing_reranker_is_a_502_naming_it(
    client: TestClient, keys: Keys, down: ScriptedRerankServer
) -> None:
    _load(client, keys)
    r = _search(client, keys, {"rerank": "broken"})
    assert r.status_code == 502, r.text
    assert "reranker broken failed: HTTP 503" in r.json()["error"]["message"]
    assert down.url not in r.text
    r = _search(client, keys, {"rerank": "gone"})
    assert r.status_code == 502, r.text
    assert "could not be reached" in r.text
