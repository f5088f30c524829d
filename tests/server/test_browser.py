"""The dashboard in a real browser: log in with a key, visit every page, screenshots."""

from __future__ import annotations

import os
import re
import shutil
import struct
from pathlib import Path

import httpx
import pytest

from daytwo.server import create_app
from daytwo.server.dashboard import NAV
from daytwo.server.ownership import grant
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

from .conftest import make_runtime
from .helpers import make_keys
from .live import chromium, live_server
from .test_evals import make_runs
from .test_knowledge import DOCS
from .test_tools_costs_audit import risk_definition

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# Read at import: the root conftest removes DAYTWO_* variables before each test.
# `DAYTWO_UPDATE_SCREENSHOTS=1 pytest tests/server/test_browser.py` refreshes the
# README's screenshots; every other run writes them to a temporary directory only,
# so `make test` leaves the tree clean (times and ids differ on every run).
UPDATE_DOCS = os.environ.get("DAYTWO_UPDATE_SCREENSHOTS") == "1"
PAGES = (
    "login",
    "run",
    "overview",
    "runs",
    "agents",
    "tools",
    "knowledge",
    "evals",
    "eval-run",
    "costs",
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The browser tests run on SQLite only (the API tests cover PostgreSQL)."""
    return sqlite_store


def _slug(href: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", href.strip("/").lower()) or "overview"


def _png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file (AssertionError when it is not one)."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    assert head[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def test_login_run_waterfall_audit_and_screenshots(
    settings: Settings, store: Store, model_server: ScriptedModelServer, tmp_path: Path
) -> None:
    keys = make_keys(store)
    app = create_app(settings, store, runtime=make_runtime(settings, store, model_server.base_url))
    SCREENSHOTS = tmp_path / "screenshots"
    SCREENSHOTS.mkdir()
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        urls: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        # A stream cut by the page's own reload is ERR_ABORTED; anything else is a failure.
        page.on(
            "requestfailed",
            lambda r: None if "ERR_ABORTED" in (r.failure or "") else errors.append(r.url),
        )

        page.goto(f"{base}/runs" if any(h == "/runs" for h, _ in NAV) else base)
        assert "/login" in page.url
        page.fill("#key", "dt_wrong")
        page.click("button[type=submit]")
        assert page.locator(".error").inner_text() == "the API key is malformed"
        page.screenshot(path=str(SCREENSHOTS / "login.png"))

        page.fill("#key", keys.admin)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert "/login" not in page.url
        assert page.locator(".tenant").inner_text() == "acme"

        # A tool of this tenant with some traffic and drift alerts, for the tools page.
        # (It runs a python callable: the operator registers it and shares it with acme.)
        app.state.gateway.register(risk_definition())
        grant(store, "tool", "risk_score", "acme")
        for account in ("a1", "a2", "a3", "a4"):
            app.state.gateway.call("risk_score", {"account": account})
        app.state.gateway.telemetry.flush()

        for doc_id, title, text in DOCS:
            r = httpx.put(
                f"{base}/api/v1/knowledge/collections/support/documents",
                json={"doc_id": doc_id, "title": title, "text": text},
                headers={"Authorization": f"Bearer {keys.admin}"},
            )
            assert r.status_code == 200, r.text

        _base_eval, cand_eval = make_runs(store)  # two eval runs of a golden set owned by acme

        # Start a run from the runs page, watch it complete, open its waterfall.
        page.goto(f"{base}/runs")
        page.click("#start-run button[type=submit]")
        page.wait_for_url(re.compile(r".*/runs/[0-9a-f]{32}$"))
        run_url = page.url
        # Generous: the shared 2-core machine can be very busy (load 30 seen).
        page.locator("#run-status", has_text="succeeded").wait_for(timeout=120_000)
        assert page.locator("#waterfall .row").count() >= 3
        assert page.locator("#waterfall .bar.kind-llm").count() >= 1
        assert "ships tomorrow" in page.locator("#answer").inner_text()
        # The summary's cost is the ledger's (the model call is priced), not the runtime's $0.
        assert page.locator("#run-cost").inner_text() not in {"", "$0.000000"}
        page.click("#verify-audit")
        page.locator("#audit-result", has_text="audit chain verified").wait_for()
        page.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)

        for href, _label in NAV:
            resp = page.goto(f"{base}{href}")
            assert resp is not None
            assert resp.status == 200, f"{href}: {resp.status}"
            assert page.locator("h1").first.is_visible()
            page.screenshot(path=str(SCREENSHOTS / f"{_slug(href)}.png"), full_page=True)

        page.goto(f"{base}/evals/runs/{cand_eval}?metric=exact_match")
        assert page.locator("#cases tbody tr").count() == 6
        page.screenshot(path=str(SCREENSHOTS / "eval-run.png"), full_page=True)

        page.goto(f"{base}/agents")
        page.fill("#promote-support input[name=version]", "1")
        page.click("#promote-support button[type=submit]")
        page.locator("#alias-1", has_text='"to_version": 1').wait_for()

        page.goto(f"{base}/knowledge")
        page.fill("#collection-support input[name=query]", "shipping")
        page.click("#collection-support button[type=submit]")
        page.locator("#search-1", has_text="shipping").wait_for()

        page.goto(run_url)
        assert page.locator("#decisions li").count() >= 1
        # Every asset is local: no request left the loopback server.
        assert errors == []
        assert urls
        assert all(u.startswith(base) for u in urls), [u for u in urls if not u.startswith(base)]

        page.click("button.link")  # log out
        page.wait_for_url(re.compile(r".*/login$"))
        page.goto(base)
        assert "/login" in page.url

    # Every page has its screenshot, a real page-sized image.
    shots = {p.stem: p for p in SCREENSHOTS.glob("*.png")}
    assert set(PAGES) <= set(shots), sorted(shots)
    for name in PAGES:
        width, height = _png_size(shots[name])
        assert width == 1280, (name, width)
        assert height >= 800, (name, height)
        assert shots[name].stat().st_size > 10_000, name  # not a blank page
    if UPDATE_DOCS:
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name in PAGES:
            shutil.copyfile(shots[name], DOCS_SCREENSHOTS / f"{name}.png")
