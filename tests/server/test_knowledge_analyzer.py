"""REST: a collection created with a keyword analyzer; an unknown one is a 400 naming the
supported ones, and leaves no collection behind; a migration changes the analyzer."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .helpers import Keys

BASE = "/api/v1/knowledge/collections"


def _hits(client: TestClient, keys: Keys, collection: str, query: str) -> set[str]:
    r = client.post(
        f"{BASE}/{collection}/search",
        json={"query": query, "mode": "bm25"},
        headers=Keys.header(keys.viewer),
    )
    assert r.status_code == 200, r.text
    return {h["doc_id"] for h in r.json()}


def test_rest_collection_with_an_analyzer(client: TestClient, keys: Keys) -> None:
    op = Keys.header(keys.operator)
    r = client.post(BASE, json={"name": "de", "analyzer": "German"}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["analyzer"] == "german"
    again = client.post(BASE, json={"name": "de", "analyzer": "german"}, headers=op)
    assert again.status_code == 200
    assert again.json() == r.json()
    r = client.put(
        f"{BASE}/de/documents", json={"doc_id": "h", "text": "Die Häuser am Fluss."}, headers=op
    )
    assert r.status_code == 200, r.text
    assert _hits(client, keys, "de", "Haus") == {"h"}
    listed = client.get(BASE, headers=op).json()
    (de,) = [c for c in listed if c["name"] == "de"]
    assert de["generations"][0]["analyzer"] == "german"

    clash = client.post(BASE, json={"name": "de", "analyzer": "french"}, headers=op)
    assert clash.status_code == 400, clash.text
    assert "--analyzer french" in clash.text

    bad = client.post(
        f"{BASE}/de/migration", json={"analyzer": "klingon"}, headers=Keys.header(keys.admin)
    )
    assert bad.status_code == 400, bad.text
    assert "unknown analyzer 'klingon'" in bad.text
    r = client.post(
        f"{BASE}/de/migration", json={"analyzer": "simple"}, headers=Keys.header(keys.admin)
    )
    assert r.status_code == 200, r.text
    r = client.post(f"{BASE}/de/migration/cutover", headers=Keys.header(keys.admin))
    assert r.status_code == 200, r.text
    assert _hits(client, keys, "de", "Haus") == set()
    assert _hits(client, keys, "de", "Häuser") == {"h"}


def test_rest_unknown_analyzer_is_a_400_and_writes_nothing(client: TestClient, keys: Keys) -> None:
    op = Keys.header(keys.operator)
    r = client.post(BASE, json={"name": "k", "analyzer": "klingon"}, headers=op)
    assert r.status_code == 400, r.text
    assert "unknown analyzer 'klingon'" in r.text
    assert "german" in r.text
    assert "k" not in {c["name"] for c in client.get(BASE, headers=op).json()}
    r = client.post(f"{BASE}/k/migration", json={"analyzer": "klingon"}, headers=op)
    assert r.status_code in (403, 404), r.text
