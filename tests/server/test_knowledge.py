"""Knowledge routes: documents, search, erase, collections, health; tenant isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .helpers import Keys

DOCS = [
    ("returns", "Returns", "You can return any item within 30 days for a full refund."),
    ("shipping", "Shipping", "Orders ship within two business days from our warehouse."),
    ("warranty", "Warranty", "Electronics carry a two year warranty against defects."),
]


def test_knowledge_flow_and_isolation(client: TestClient, keys: Keys) -> None:
    c = client
    op = Keys.header(keys.operator)
    for doc_id, title, text in DOCS:
        r = c.put(
            "/api/v1/knowledge/collections/help/documents",
            json={"doc_id": doc_id, "title": title, "text": text},
            headers=op,
        )
        assert r.status_code == 200, r.text
    hits = c.post(
        "/api/v1/knowledge/collections/help/search",
        json={"query": "how long does shipping take", "mode": "bm25", "k": 2},
        headers=Keys.header(keys.viewer),
    ).json()
    assert hits[0]["doc_id"] == "shipping"
    cols = c.get("/api/v1/knowledge/collections", headers=Keys.header(keys.viewer)).json()
    assert [(col["name"], col["documents"]) for col in cols] == [("help", 3)]
    assert cols[0]["generations"][0]["state"] == "active"
    health = c.get(
        "/api/v1/knowledge/collections/help/health?samples=3", headers=Keys.header(keys.viewer)
    ).json()
    assert health[0]["recall_at_10"] is not None
    assert "tombstone_ratio" in health[0]["extra"]

    # Another tenant: the collection does not exist for it, and it cannot write into it.
    theirs = Keys.header(keys.other_admin)
    assert c.get("/api/v1/knowledge/collections", headers=theirs).json() == []
    r = c.post("/api/v1/knowledge/collections/help/search", json={"query": "x"}, headers=theirs)
    assert r.status_code == 404
    assert c.get("/api/v1/knowledge/collections/help/health", headers=theirs).status_code == 404
    r = c.delete("/api/v1/knowledge/collections/help/documents/returns", headers=theirs)
    assert r.status_code == 404
    r = c.put(
        "/api/v1/knowledge/collections/help/documents",
        json={"doc_id": "evil", "text": "overwrite"},
        headers=theirs,
    )
    assert r.status_code == 409

    # Viewers cannot write; erase removes the document from search.
    r = c.put(
        "/api/v1/knowledge/collections/help/documents",
        json={"doc_id": "x", "text": "y"},
        headers=Keys.header(keys.viewer),
    )
    assert r.status_code == 403
    assert (
        c.delete("/api/v1/knowledge/collections/help/documents/shipping", headers=op).json()[
            "status"
        ]
        == "erased"
    )
    hits = c.post(
        "/api/v1/knowledge/collections/help/search",
        json={"query": "shipping warehouse", "mode": "bm25"},
        headers=op,
    ).json()
    assert "shipping" not in {h["doc_id"] for h in hits}
    r = c.delete("/api/v1/knowledge/collections/help/documents/shipping", headers=op)
    assert r.status_code == 404


def test_migration_cutover_and_rollback(client: TestClient, keys: Keys) -> None:
    c = client
    admin = Keys.header(keys.admin)
    for doc_id, title, text in DOCS:
        c.put(
            "/api/v1/knowledge/collections/help/documents",
            json={"doc_id": doc_id, "title": title, "text": text},
            headers=admin,
        )
    body = {"embedder": "hashing-384", "chunking": "size=64,overlap=8"}
    assert (
        c.post(
            "/api/v1/knowledge/collections/help/migration",
            json=body,
            headers=Keys.header(keys.operator),
        ).status_code
        == 403
    )
    theirs = Keys.header(keys.other_admin)
    r = c.post("/api/v1/knowledge/collections/help/migration", json=body, headers=theirs)
    assert r.status_code == 404
    r = c.post("/api/v1/knowledge/collections/help/migration", json=body, headers=admin)
    assert r.status_code == 200, r.text
    mig = r.json()
    assert (mig["done"], mig["total"]) == (3, 3)
    r = c.post("/api/v1/knowledge/collections/help/migration/cutover", headers=admin)
    assert r.status_code == 200, r.text
    cols = c.get("/api/v1/knowledge/collections", headers=admin).json()
    assert cols[0]["active_generation"] == mig["target_generation"]
    r = c.post("/api/v1/knowledge/collections/help/migration/rollback", headers=admin)
    assert r.status_code == 200, r.text
    cols = c.get("/api/v1/knowledge/collections", headers=admin).json()
    assert cols[0]["active_generation"] == mig["source_generation"]
    r = c.post(
        "/api/v1/knowledge/collections/help/migration", json={"embedder": "nope"}, headers=admin
    )
    assert r.status_code == 400


def test_search_route_applies_filters(client: TestClient, keys: Keys) -> None:
    op = Keys.header(keys.operator)
    for doc_id, lang in (("en-1", "en"), ("de-1", "de"), ("de-2", "de")):
        r = client.put(
            "/api/v1/knowledge/collections/langs/documents",
            json={"doc_id": doc_id, "text": f"refund policy {doc_id}", "metadata": {"lang": lang}},
            headers=op,
        )
        assert r.status_code == 200, r.text
    url = "/api/v1/knowledge/collections/langs/search"
    everything = client.post(url, json={"query": "refund policy"}, headers=op).json()
    assert {h["doc_id"] for h in everything} == {"en-1", "de-1", "de-2"}
    for mode in ("bm25", "dense", "hybrid"):
        hits = client.post(
            url,
            json={"query": "refund policy", "mode": mode, "filters": {"lang": "de"}},
            headers=op,
        ).json()
        assert {h["doc_id"] for h in hits} == {"de-1", "de-2"}, (mode, hits)
    r = client.post(url, json={"query": "refund", "filters": {"lang": ["de"]}}, headers=op)
    assert r.status_code == 400
    assert "the flat form takes scalar values only" in r.text
