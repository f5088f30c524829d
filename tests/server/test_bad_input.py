"""Bad input gets a 4xx with the JSON error body, never a 500 or a stack trace."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from daytwo.store import Store

from .helpers import Keys


def assert_error(r: Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in r.text


def test_missing_key(client: TestClient) -> None:
    assert_error(client.get("/api/v1/me"), 401, "not_authenticated")


@pytest.mark.parametrize("key", ["nonsense", "dt_" + "0" * 32 + "_" + "x" * 43, ""])
def test_malformed_or_unknown_key(client: TestClient, keys: Keys, key: str) -> None:
    assert_error(
        client.get("/api/v1/me", headers={"X-API-Key": key or " "}), 401, "not_authenticated"
    )


def test_malformed_json(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/keys",
        content=b'{"role": "viewer",',
        headers={**Keys.header(keys.admin), "Content-Type": "application/json"},
    )
    assert_error(r, 400, "malformed_json")


def test_schema_mismatch(client: TestClient, keys: Keys) -> None:
    r = client.post("/api/v1/keys", json={"role": "root"}, headers=Keys.header(keys.admin))
    assert_error(r, 422, "validation_error")
    assert "role" in r.json()["error"]["message"]


def test_wrong_content_type(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/api/v1/keys",
        content=b"role=viewer",
        headers={**Keys.header(keys.admin), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(r, 415, "unsupported_media_type")
    r = client.post("/api/v1/keys", content=b"{}", headers=Keys.header(keys.admin))
    assert_error(r, 415, "unsupported_media_type")


def test_oversized_body(client: TestClient, keys: Keys) -> None:
    big = b'{"name": "' + b"x" * (2 << 20) + b'"}'
    r = client.post(
        "/api/v1/keys",
        content=big,
        headers={**Keys.header(keys.admin), "Content-Type": "application/json"},
    )
    assert_error(r, 413, "body_too_large")


def test_oversized_streamed_body_without_length(client: TestClient, keys: Keys) -> None:
    def chunks():  # no Content-Length: the guard counts the bytes it reads
        for _ in range(40):
            yield b"x" * 65536

    r = client.post(
        "/api/v1/keys",
        content=chunks(),
        headers={**Keys.header(keys.admin), "Content-Type": "application/json"},
    )
    assert_error(r, 413, "body_too_large")


def test_unknown_route_and_method(client: TestClient, keys: Keys) -> None:
    assert_error(
        client.get("/api/v1/nothing-here", headers=Keys.header(keys.admin)), 404, "not_found"
    )
    assert_error(client.put("/health"), 405, "method_not_allowed")


def test_another_tenants_id_is_not_found(client: TestClient, keys: Keys) -> None:
    other = client.get("/api/v1/keys", headers=Keys.header(keys.other_admin)).json()[0]["id"]
    assert_error(
        client.delete(f"/api/v1/keys/{other}", headers=Keys.header(keys.admin)), 404, "not_found"
    )


def test_viewer_cannot_write(client: TestClient, keys: Keys) -> None:
    r = client.post("/api/v1/keys", json={"role": "viewer"}, headers=Keys.header(keys.viewer))
    assert_error(r, 403, "permission_denied")


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """Bad-input handling does not depend on the database: SQLite only (fast)."""
    return sqlite_store
