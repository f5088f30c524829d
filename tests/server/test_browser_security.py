"""The dashboard under attack in a real Chromium: stored XSS payloads in every field a user
controls, the CSP, and a cross-origin page trying to cancel a run."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.runner import CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.server import create_app
from daytwo.server.dashboard import NAV
from daytwo.server.ownership import claim
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

from .conftest import make_runtime
from .helpers import Keys, make_keys
from .live import chromium, live_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Script in text, attribute breaking (both quote kinds), an event handler, a javascript: URL.
XSS = (
    "<script>alert('x1')</script>\"><img src=x onerror=alert('x2')>"
    "'><svg onload=alert('x3')><a href=\"javascript:alert('x4')\">j</a>"
)
# What a llama.cpp server answers as its model name: the GGUF file's path on the server.
SERVER_PATH = "/srv/daytwo-private/models/secret-model.gguf"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """Another origin on the same host (another loopback port), serving ``html``."""

    class _H(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _wait_status(base: str, run_id: str, auth: dict[str, str], final: set[str]) -> str:
    deadline = time.monotonic() + 120  # generous: the shared machine can be very busy
    status = ""
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/api/v1/runs/{run_id}", headers=auth).json()["status"]
        if status in final:
            return str(status)
        time.sleep(0.2)
    return status


def _store_payloads(base: str, keys: Keys, store: Store) -> str:
    admin = Keys.header(keys.admin)
    r = httpx.post(f"{base}/api/v1/keys", json={"name": XSS, "role": "viewer"}, headers=admin)
    assert r.status_code == 201, r.text
    r = httpx.put(
        f"{base}/api/v1/knowledge/collections/support/documents",
        json={"doc_id": "xss-doc", "title": XSS, "text": f"shipping policy {XSS}"},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    tool = {
        "name": "xss_tool",
        "capability": "test.xss",
        "version": "1.0.0",
        "description": XSS,
        "input_schema": {"type": "object", "description": XSS},
        "backend": {"type": "http", "method": "GET", "url": "https://api.example.com/x"},
    }
    r = httpx.post(f"{base}/api/v1/tools", json={"definition": tool}, headers=admin)
    assert r.status_code == 201, r.text
    spec = {
        "name": "xss-agent",
        "description": XSS,
        "model": "openai/gpt-4o-mini",
        "steps": [{"id": "answer", "kind": "llm", "prompt": XSS}],
        "output": "answer",
    }
    r = httpx.post(f"{base}/api/v1/agents", json={"spec": spec}, headers=admin)
    assert r.status_code == 201, r.text
    # Eval cases (sets are made by the CLI or the Python API).
    sets = GoldenSets(store)
    sets.create("xss-set")
    sets.add("xss-set", [Case(key="k1", input=XSS, expected_output=XSS)], note=XSS)
    claim(store, "eval_set", "xss-set", "acme", "eval set", exists=False)
    by = {"started_by": "acme/key:0123456789ab"}  # as if started through the API
    runner = CallableRunner(lambda case: XSS, name="xss", version="1")
    run = EvalRuns(store).run(runner, "xss-set", config=by)
    return run.id


def test_stored_xss_never_runs_csp_holds_and_another_origin_cannot_cancel(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    hold = threading.Event()

    def model(request: dict[str, Any]) -> str:
        if "HOLD" in str(request):
            hold.wait(60)
        # The model's answer is user-influenced text too (prompt injection).
        return json.dumps({"answer": XSS, "needs_human": False})

    keys = make_keys(store)
    with ScriptedModelServer(responder=model, model=SERVER_PATH) as ms:
        app = create_app(settings, store, runtime=make_runtime(settings, store, ms.base_url))
        with live_server(app) as base, chromium() as browser:
            eval_run = _store_payloads(base, keys, store)
            op = Keys.header(keys.admin)
            done = httpx.post(
                f"{base}/api/v1/runs",
                json={"agent": "support", "inputs": {"question": XSS}},
                headers=op,
            )
            assert done.status_code == 202, done.text
            done_id = done.json()["id"]
            _wait_status(base, done_id, op, {"succeeded", "failed"})
            held = httpx.post(
                f"{base}/api/v1/runs",
                json={"agent": "support", "inputs": {"question": f"HOLD {XSS}"}},
                headers=op,
            )
            assert held.status_code == 202, held.text
            held_id = held.json()["id"]

            page = browser.new_page(viewport={"width": 1280, "height": 800})
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            violations: list[str] = []
            page.on(
                "console",
                lambda m: (
                    violations.append(page.url + " " + m.text[:50])
                    if "Content Security Policy" in m.text or "Refused to" in m.text
                    else None
                ),
            )
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            page.goto(f"{base}/login")
            page.fill("#key", keys.admin)
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert "/login" not in page.url

            visited = [h for h, _ in NAV] + [
                f"/runs/{done_id}",
                f"/runs/{held_id}",
                f"/api/v1/evals/runs/{eval_run}/report",
                "/docs",
            ]
            texts = {}
            for href in visited:
                resp = page.goto(f"{base}{href}")
                assert resp is not None
                assert resp.status == 200, href
                csp = resp.headers["content-security-policy"]
                assert "unsafe-inline" not in csp, href
                assert "script-src 'self'" in csp, href
                assert resp.headers["x-frame-options"] == "DENY", href
                if href == "/docs":
                    page.wait_for_load_state("networkidle")
                html = page.content()
                texts[href] = html
                assert "daytwo-private" not in html, href  # no server path in any page
            # The payloads were rendered (as text) where they belong.
            shown = [h for h, html in texts.items() if "&lt;script&gt;alert" in html]
            assert f"/runs/{done_id}" in shown, shown
            assert "gpt-4o-mini" in texts["/costs"]  # the model by its profile, no path
            # Swagger UI really rendered from the local bundle under the CSP.
            page.goto(f"{base}/docs")
            page.locator(".swagger-ui .opblock").first.wait_for(timeout=30_000)

            assert dialogs == []
            assert violations == []
            assert errors == []

            # A page on another port of the same host auto-submits a form that would
            # cancel the held run with the victim's cookie (same site: SameSite does
            # not stop it); the Origin check and the missing CSRF token do.
            form = (
                f'<form id="f" method="post" action="{base}/api/v1/runs/{held_id}/cancel">'
                "</form><script>document.getElementById('f').submit()</script>"
            )
            with attacker_site(form) as evil:
                resp_status: list[int] = []
                page.on(
                    "response",
                    lambda r: resp_status.append(r.status) if r.url.endswith("/cancel") else None,
                )
                page.goto(evil)
                deadline = time.monotonic() + 20
                while not resp_status and time.monotonic() < deadline:
                    page.wait_for_timeout(100)
                assert resp_status == [403]
            status = httpx.get(f"{base}/api/v1/runs/{held_id}", headers=op).json()["status"]
            assert status not in {"cancelled"}, status
            # The dashboard's own Cancel button (same origin, with the token) works.
            page.goto(f"{base}/runs/{held_id}")
            page.click("button[data-api-button$='/cancel']")
            try:
                assert _wait_status(base, held_id, op, {"cancelled"}) == "cancelled"
            finally:
                hold.set()
