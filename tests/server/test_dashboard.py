"""Dashboard pages over TestClient: login/logout, redirects, tenant isolation of pages."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord

from .helpers import Keys


def csrf_of(page: str) -> str:
    """The CSRF token a dashboard page carries for its scripts and forms."""
    m = re.search(r'<meta name="csrf-token" content="([0-9a-f]*)">', page)
    assert m is not None, "the page carries no CSRF token"
    assert m.group(1), "the page carries an empty CSRF token"
    return m.group(1)


def login(c: TestClient, key: str) -> None:
    # Like a browser: the login form carries the CSRF token of a (stale) session cookie.
    form = c.get("/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]*)"', form)
    data = {"key": key, "next": "/runs", "csrf_token": token.group(1) if token else ""}
    r = c.post("/login", data=data, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/runs"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie


def test_pages_need_a_session(client: TestClient, keys: Keys) -> None:
    r = client.get("/runs?status=failed", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/runs%3Fstatus%3Dfailed"
    r = client.post("/login", data={"key": "dt_nope", "next": "/"})
    assert r.status_code == 401
    assert "the API key is malformed" in r.text
    # Never redirect off-site after login.
    r = client.post(
        "/login", data={"key": keys.viewer, "next": "//evil.example/"}, follow_redirects=False
    )
    assert r.headers["location"] == "/"


def test_run_page_is_tenant_scoped(client: TestClient, keys: Keys, store: Store) -> None:
    with store.session() as s:
        s.add(
            RunRecord(
                id="r" * 32,
                agent_name="support",
                agent_version=1,
                status="succeeded",
                inputs={"question": "q"},
                outputs={"answer": {"answer": "forty-two"}},
                decisions=[{"kind": "tool_choice", "summary": "chose the cache", "data": {}}],
                principal="acme/key:abc",
            )
        )
    login(client, keys.viewer)
    r = client.get(f"/runs/{'r' * 32}")
    assert r.status_code == 200
    assert "forty-two" in r.text
    assert "chose the cache" in r.text
    assert "No spans recorded for this run" in r.text
    runs = client.get("/runs").text
    assert "r" * 12 in runs
    # Viewers see no start form; the API would refuse them anyway.
    assert 'id="start-run"' not in runs
    r = client.post("/logout", follow_redirects=False)
    assert r.status_code == 403  # no CSRF token: a cookie alone never logs out
    r = client.post("/logout", data={"csrf_token": csrf_of(runs)}, follow_redirects=False)
    assert r.status_code == 303

    login(client, keys.other_admin)
    r = client.get(f"/runs/{'r' * 32}")
    assert r.status_code == 404
    assert "no run" in r.text
    assert "r" * 12 not in client.get("/runs").text
