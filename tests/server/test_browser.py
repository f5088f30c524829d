"""The dashboard in a real browser: log in with a key, visit every page, screenshots."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI

from daytwo.server.dashboard import NAV
from daytwo.store import Store

from .helpers import make_keys
from .live import chromium, live_server

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """The browser tests run on SQLite only (the API tests cover PostgreSQL)."""
    return sqlite_store


def _slug(href: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", href.strip("/").lower()) or "overview"


def test_login_pages_and_screenshots(app: FastAPI, store: Store) -> None:
    keys = make_keys(store)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("requestfailed", lambda r: errors.append(f"{r.url} failed"))

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

        for href, label in NAV:
            resp = page.goto(f"{base}{href}")
            assert resp is not None
            assert resp.status == 200, f"{href}: {resp.status}"
            assert page.locator("h1").first.is_visible()
            page.screenshot(path=str(SCREENSHOTS / f"{_slug(href)}.png"), full_page=True)

        # Every asset is local: no request left the loopback server.
        assert errors == []

        page.click("button.link")  # log out
        page.wait_for_url(re.compile(r".*/login$"))
        page.goto(base)
        assert "/login" in page.url
