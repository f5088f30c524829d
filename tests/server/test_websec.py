"""Web hardening over TestClient: CSRF on every state-changing request, security headers,
login throttling, session expiry and revocation, API docs without a CDN."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.server import DashboardSession

from .helpers import Keys
from .test_dashboard import csrf_of, login

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """These checks are about HTTP, not the database: SQLite only."""
    return sqlite_store


def assert_hardened(headers: dict[str, str] | object, what: str) -> None:
    h = {k.lower(): v for k, v in dict(headers).items()}  # type: ignore[call-overload]
    for name, value in SECURITY_HEADERS.items():
        assert h.get(name) == value, (what, name, h.get(name))
    csp = h["content-security-policy"]
    assert "unsafe-inline" not in csp, (what, csp)
    assert "unsafe-eval" not in csp, (what, csp)
    assert "script-src 'self'" in csp, (what, csp)
    assert "frame-ancestors 'none'" in csp, (what, csp)


def test_every_kind_of_answer_carries_the_security_headers(client: TestClient, keys: Keys) -> None:
    auth = Keys.header(keys.viewer)
    for path in ("/health", "/login", "/static/app.js", "/openapi.json", "/docs"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert_hardened(r.headers, path)
    assert_hardened(client.get("/api/v1/me", headers=auth).headers, "api")
    assert_hardened(client.get("/api/v1/runs/nope", headers=auth).headers, "404")
    assert_hardened(client.get("/api/v1/me").headers, "401")


def test_api_docs_are_served_locally_without_inline_script(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "cdn" not in html.lower()
    assert "https://" not in html
    assert re.search(r"<script>\s*\S", html) is None, "inline script on /docs"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert client.get(f"/static/apidocs/{asset}").status_code == 200
    assert client.get("/static/apidocs.js").status_code == 200
    assert client.get("/redoc").status_code == 404  # ReDoc needs inline styles: not served


def test_cookie_requests_need_the_csrf_token_bodyless_posts_too(
    client: TestClient, keys: Keys
) -> None:
    login(client, keys.admin)
    token = csrf_of(client.get("/runs").text)
    refused = [
        ("POST", "/api/v1/runs/nope/cancel", None),
        ("POST", "/api/v1/runs/nope/resume", None),
        ("POST", "/api/v1/knowledge/collections/kb/cutover", None),
        ("POST", "/api/v1/agents/support/rollback", None),
        ("POST", "/api/v1/keys", {"role": "viewer"}),
        ("DELETE", "/api/v1/keys/" + "0" * 32, None),
    ]
    for method, path, body in refused:
        r = client.request(method, path, json=body)
        assert r.status_code == 403, (path, r.status_code)
        assert r.json()["error"]["code"] == "csrf_refused"
        r = client.request(method, path, json=body, headers={"X-CSRF-Token": "0" * 64})
        assert r.status_code == 403, path
    # With the page's token the request reaches the route (which answers for itself).
    r = client.post("/api/v1/runs/nope/cancel", headers={"X-CSRF-Token": token})
    assert r.json()["error"]["code"] != "csrf_refused"
    r = client.post("/api/v1/keys", json={"role": "viewer"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201
    # Another origin (another port of the same host is the same *site*) is refused
    # even with the token; so is an opaque origin.
    for origin in ("http://testserver:8081", "http://evil.example", "null"):
        r = client.post(
            "/api/v1/runs/nope/cancel", headers={"X-CSRF-Token": token, "Origin": origin}
        )
        assert r.status_code == 403, origin
    r = client.post(
        "/api/v1/runs/nope/cancel",
        headers={"X-CSRF-Token": token, "Referer": "http://other:1/page"},
    )
    assert r.status_code == 403
    r = client.post(
        "/api/v1/runs/nope/cancel",
        headers={"X-CSRF-Token": token, "Origin": "http://testserver"},
    )
    assert r.json()["error"]["code"] != "csrf_refused"


def test_api_key_requests_need_no_token(client: TestClient, keys: Keys) -> None:
    login(client, keys.viewer)  # a session cookie rides along, but the key authenticates
    r = client.post("/api/v1/keys", json={"role": "viewer"}, headers=Keys.header(keys.admin))
    assert r.status_code == 201
    fresh = TestClient(client.app)
    r = fresh.post("/api/v1/keys", json={"role": "viewer"}, headers={"X-API-Key": keys.admin})
    assert r.status_code == 201


def test_login_is_throttled_with_retry_after(client: TestClient, keys: Keys) -> None:
    for _ in range(10):
        assert client.post("/login", data={"key": "dt_wrong"}).status_code == 401
    r = client.post("/login", data={"key": keys.admin})
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 61
    assert "too many failed logins" in r.text
    assert "daytwo_session" not in r.headers.get("set-cookie", "")


def test_login_from_another_origin_is_refused(client: TestClient, keys: Keys) -> None:
    r = client.post(
        "/login",
        data={"key": keys.admin},
        headers={"Origin": "http://127.0.0.1:9999"},
        follow_redirects=False,
    )
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


def test_sessions_expire_and_end_with_their_key(
    client: TestClient, keys: Keys, store: Store
) -> None:
    login(client, keys.operator)
    assert client.get("/runs", follow_redirects=False).status_code == 200
    with store.session() as s:
        s.execute(sa.update(DashboardSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert client.get("/runs", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401

    login(client, keys.operator)
    assert client.get("/api/v1/me").status_code == 200
    me = client.get("/api/v1/me").json()
    admin = Keys.header(keys.admin)
    assert client.delete(f"/api/v1/keys/{me['key_id']}", headers=admin).status_code == 200
    assert client.get("/runs", follow_redirects=False).status_code == 303
    assert client.get("/api/v1/me").status_code == 401


def test_integer_parameters_out_of_range_are_400_not_500(client: TestClient, keys: Keys) -> None:
    admin = Keys.header(keys.admin)
    for since in ("9223372036854775808", "-1", "99999999999999999999999"):
        r = client.get(f"/api/v1/audit/export?since_seq={since}", headers=admin)
        assert r.status_code in (400, 422), (since, r.status_code)
        assert "error" in r.json()
    r = client.get("/api/v1/audit/export?since_seq=9223372036854775807", headers=admin)
    assert r.status_code == 200
    r = client.post("/api/v1/agents/support/promote", json={"version": 2**40}, headers=admin)
    assert r.status_code in (400, 422)


def test_the_last_admin_key_cannot_be_revoked(client: TestClient, keys: Keys) -> None:
    admin = Keys.header(keys.admin)
    me = client.get("/api/v1/me", headers=admin).json()
    r = client.delete(f"/api/v1/keys/{me['key_id']}", headers=admin)
    assert r.status_code == 409
    assert "last admin key of tenant 'acme'" in r.json()["error"]["message"]
    r = client.post("/api/v1/keys", json={"role": "admin"}, headers=admin)
    second = r.json()
    assert client.delete(f"/api/v1/keys/{me['key_id']}", headers=admin).status_code == 200
    # The survivor is now the last one.
    r = client.delete(f"/api/v1/keys/{second['id']}", headers=Keys.header(second["key"]))
    assert r.status_code == 409


def test_last_used_at_is_set_on_use_at_most_once_a_minute(
    client: TestClient, keys: Keys, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from daytwo.store.tables.server import ApiKey

    viewer = Keys.header(keys.viewer)
    key_id = client.get("/api/v1/me", headers=viewer).json()["key_id"]
    with store.session() as s:
        first = s.get(ApiKey, key_id).last_used_at  # type: ignore[union-attr]
    assert first is not None
    client.get("/api/v1/me", headers=viewer)
    with store.session() as s:
        assert s.get(ApiKey, key_id).last_used_at == first  # type: ignore[union-attr]
    # Two minutes later (the process remembers its own last write, so move the clock).
    later = utcnow() + timedelta(minutes=2)
    monkeypatch.setattr("daytwo.server.auth.utcnow", lambda: later)
    client.get("/api/v1/me", headers=viewer)
    with store.session() as s:
        assert s.get(ApiKey, key_id).last_used_at > first  # type: ignore[union-attr, operator]
    listed = client.get("/api/v1/keys", headers=Keys.header(keys.admin)).json()
    assert next(k for k in listed if k["id"] == key_id)["last_used_at"] is not None
