"""Health, identity and the key-admin routes: roles and tenant isolation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from .helpers import Keys


def test_health_needs_no_key(client: TestClient) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["database"] == "ok"


def test_me_by_bearer_and_header(client: TestClient, keys: Keys) -> None:
    r = client.get("/api/v1/me", headers=Keys.header(keys.operator))
    assert r.status_code == 200
    assert r.json()["tenant"] == "acme"
    assert r.json()["role"] == "operator"
    r = client.get("/api/v1/me", headers={"X-API-Key": keys.other_viewer})
    assert r.json()["tenant"] == "globex"


def test_keys_admin_only(client: TestClient, keys: Keys) -> None:
    for key in (keys.viewer, keys.operator):
        r = client.get("/api/v1/keys", headers=Keys.header(key))
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "permission_denied"
        r = client.post("/api/v1/keys", json={"role": "admin"}, headers=Keys.header(key))
        assert r.status_code == 403


def test_keys_are_tenant_isolated_and_secret_free(client: TestClient, keys: Keys) -> None:
    r = client.get("/api/v1/keys", headers=Keys.header(keys.admin))
    assert r.status_code == 200
    listed = r.json()
    assert {k["tenant"] for k in listed} == {"acme"}
    assert len(listed) == 3
    assert all("key" not in k and "secret_sha256" not in k for k in listed)
    text = r.text
    for key in (keys.admin, keys.operator, keys.viewer):
        assert key.split("_", 2)[2] not in text

    other = client.get("/api/v1/keys", headers=Keys.header(keys.other_admin)).json()
    other_id = other[0]["id"]
    # acme's admin cannot revoke globex's key: it does not exist for acme.
    r = client.delete(f"/api/v1/keys/{other_id}", headers=Keys.header(keys.admin))
    assert r.status_code == 404
    assert client.get("/api/v1/me", headers=Keys.header(keys.other_admin)).status_code == 200


def test_create_and_revoke_key(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/keys", json={"role": "viewer", "name": "dash"}, headers=Keys.header(keys.admin)
    )
    assert r.status_code == 201
    new = r.json()
    assert new["tenant"] == "acme"
    assert client.get("/api/v1/me", headers=Keys.header(new["key"])).status_code == 200
    r = client.delete(f"/api/v1/keys/{new['id']}", headers=Keys.header(keys.admin))
    assert r.status_code == 200
    assert r.json()["revoked_at"] is not None
    r = client.get("/api/v1/me", headers=Keys.header(new["key"]))
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "the API key was revoked"
    assert r.headers["www-authenticate"] == "Bearer"


def test_health_is_503_when_the_schema_is_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from daytwo.server import create_app
    from daytwo.settings import Settings
    from daytwo.store import Store

    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        app = create_app(
            Settings(data_dir=tmp_path),
            store,
            check_schema=False,
            with_runtime=False,
            with_gateway=False,
            with_knowledge=False,
        )
        with TestClient(app) as c:
            r = c.get("/health")
        assert r.status_code == 503
        assert r.json()["status"] == "degraded"
        assert "daytwo db upgrade" in r.json()["database"]
    finally:
        store.dispose()
