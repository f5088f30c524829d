"""A planted credential, really used by a tool call inside the server, never shows up in the
server's logs, in any API answer or dashboard page, in the audit export, or in the DB."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.exceptions import BackendError
from daytwo.server import create_app
from daytwo.settings import Settings
from daytwo.store import Store

from .helpers import Keys, make_keys
from .test_dashboard import login

SECRET = "sk-PLANTED-" + uuid.uuid4().hex


@pytest.fixture
def echo_backend() -> Iterator[tuple[str, list[str]]]:
    """A backend that answers 403 with the Authorization header it got (a careless API)."""
    seen: list[str] = []

    class _H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("authorization", "")
            seen.append(auth)
            body = f"bad key {auth}".encode()
            self.send_response(403)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    import threading

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_planted_credential_never_leaves_the_vault(
    sqlite_store: Store,
    tmp_path: Path,
    echo_backend: tuple[str, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    url, seen = echo_backend
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=sqlite_store.url,
        embedder="hashing-384",
        egress_allow=["127.0.0.1"],  # type: ignore[arg-type]
    )
    keys = make_keys(sqlite_store)
    app = create_app(settings, sqlite_store, with_runtime=False)
    admin = Keys.header(keys.admin)
    with TestClient(app, raise_server_exceptions=False) as client:
        gateway = app.state.gateway
        gateway.vault.put("acme/billing-token", SECRET)
        tool = {
            "name": "billing",
            "capability": "billing.lookup",
            "version": "1.0.0",
            "input_schema": {"type": "object"},
            "backend": {
                "type": "http",
                "method": "GET",
                "url": url + "/invoices",
                "retries": 0,
                "auth": {"type": "bearer", "secret": "acme/billing-token"},
            },
        }
        r = client.post("/api/v1/tools", json={"definition": tool}, headers=admin)
        assert r.status_code == 201, r.text
        with pytest.raises(BackendError) as info:
            gateway.call("billing", {})
        assert seen == [f"Bearer {SECRET}"]  # the credential was really used
        assert SECRET not in str(info.value)
        gateway.telemetry.flush()

        # Every GET operation without path parameters, and every dashboard page.
        answers: dict[str, str] = {}
        spec = client.get("/openapi.json").json()
        for path, item in spec["paths"].items():
            if "get" in item and "{" not in path:
                answers[path] = client.get(path, headers=admin).text
        for path in ("/api/v1/tools/billing", "/api/v1/audit/export"):
            answers[path] = client.get(path, headers=admin).text
        login(client, keys.admin)
        for page in ("/", "/runs", "/agents", "/tools", "/knowledge", "/evals", "/costs"):
            answers[page] = client.get(page).text
        assert len(answers) >= 15
        leaked = [p for p, text in answers.items() if SECRET in text]
        assert leaked == []
        assert "billing" in answers["/api/v1/tools"]

    assert SECRET not in caplog.text
    with sqlite_store.engine.connect() as conn:
        tables = [
            t for (t,) in conn.execute(sa.text("SELECT name FROM sqlite_master WHERE type='table'"))
        ]
        for table in tables:
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            dump = json.dumps([list(r) for r in rows], default=str)
            assert SECRET not in dump, table
