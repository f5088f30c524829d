"""The trace explorer in Chromium over a store seeded with 100k runs: filter down to one
failing run, open it, compare it with the next turn of its session, open the session;
keyboard only where a user would use it; bad filters are a clear 400; axe-core passes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from daytwo.server import create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing.seed_runs import NEEDLE_PHRASE, seed_runs

from .helpers import make_keys
from .live import chromium, live_server
from .test_browser_health import AXE_JS, _axe, _login

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
UPDATE_DOCS = (
    os.environ.get("DAYTWO_UPDATE_SCREENSHOTS") == "1"
)  # read at import (see test_browser)

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


def _rows(page: Any) -> list[str]:
    return [
        str(r)
        for r in page.locator("#explorer tbody tr[data-run]").evaluate_all(
            "rows => rows.map(r => r.dataset.run)"
        )
    ]


def test_explorer_finds_opens_compares_and_strings_a_session(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    seeded = seed_runs(store, 100_000, seed=7)
    needle = seeded.needle
    keys = make_keys(store)
    app = create_app(settings, store, with_runtime=False)
    shots = DOCS_SCREENSHOTS if UPDATE_DOCS else tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _login(page, base, keys.viewer)

        page.goto(f"{base}/explorer")
        assert len(_rows(page)) == 50
        assert page.locator("#next-page").count() == 1
        # "/" focuses the search; filter to failed runs with the phrase.
        page.keyboard.press("/")
        assert page.evaluate("document.activeElement.id") == "q"
        page.keyboard.type(NEEDLE_PHRASE.split(" at ")[0])  # "parcel held"
        page.select_option("#f-status", "failed")
        page.click("#apply-filters")
        page.wait_for_load_state()
        assert _rows(page) == [needle.run_id]
        shared = page.url
        assert "status=failed" in shared
        assert "q=parcel+held" in shared
        page.screenshot(path=str(shots / "explorer.png"))

        # The address is the whole state: a fresh tab shows the same one run.
        other = browser.new_page()
        _login(other, base, keys.viewer)
        other.goto(shared)
        assert _rows(other) == [needle.run_id]
        other.close()

        # j selects the row, Enter opens the run.
        page.keyboard.press("j")
        assert page.locator("#explorer tr.current").get_attribute("data-run") == needle.run_id
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf".*/runs/{needle.run_id}$"))
        assert page.locator("#run-status").inner_text() == "failed"

        # Its session in the explorer: mark the needle and the next turn with x, compare with c.
        page.goto(f"{base}/explorer?session={needle.session_id}&order=asc&sort=started")
        assert _rows(page) == list(needle.session_runs)
        for _ in range(2):
            page.keyboard.press("j")
            page.keyboard.press("x")
        page.keyboard.press("c")
        page.wait_for_url(re.compile(r".*/explorer/compare\?run=.*"))
        first, second = needle.session_runs[0], needle.session_runs[1]
        assert page.locator(".run-1").inner_text() == first
        assert page.locator(".run-2").inner_text() == second
        assert page.locator("#compare-steps tbody tr").count() >= 2
        assert page.locator("#delta-cost").inner_text().startswith(("+", "-"))
        page.screenshot(path=str(shots / "compare.png"), full_page=True)

        # The session view strings the turns together, oldest first.
        page.click(f"#compare-summary a[href='/explorer/sessions/{needle.session_id}']")
        page.wait_for_url(re.compile(r".*/explorer/sessions/.*"))
        turns = page.locator("#timeline li").evaluate_all("li => li.map(x => x.dataset.run)")
        assert turns == list(needle.session_runs)
        assert NEEDLE_PHRASE in page.locator("#timeline li").first.inner_text()
        page.screenshot(path=str(shots / "session.png"), full_page=True)

        # Bad filter values: one clear 400 naming the field and the fix.
        resp = page.goto(f"{base}/explorer?cost_min=cheap")
        assert resp is not None
        assert resp.status == 400
        assert "filter cost_min='cheap' is not a number" in page.locator("main").inner_text()
        resp = page.goto(f"{base}/explorer/compare?run={needle.run_id}")
        assert resp is not None
        assert resp.status == 400
        assert "compare needs exactly two run ids" in page.locator("main").inner_text()

        # The whole filtered set downloads as JSON through the table's link.
        page.goto(f"{base}/explorer?status=failed&agent={needle.agent}&version={needle.version}")
        with page.expect_download() as dl:
            page.click("#export-json")
        data = json.loads(Path(dl.value.path()).read_text())
        assert needle.run_id in {d["id"] for d in data}
        assert {d["status"] for d in data} == {"failed"}
        assert len(data) > 50
    assert not errors, errors


def test_explorer_pages_pass_axe_core(settings: Settings, store: Store) -> None:
    if not AXE_JS.exists():
        pytest.skip("axe-core is not in .cache/axe-core: run `make browser` (npm pack axe-core)")
    seeded = seed_runs(store, 300, seed=4, days=2)
    needle = seeded.needle
    keys = make_keys(store)
    app = create_app(settings, store, with_runtime=False)
    pages = [
        "/explorer",
        f"/explorer?status=failed&q={NEEDLE_PHRASE.replace(' ', '+')}",
        "/explorer?status=succeeded&kind=external",
        f"/explorer/sessions/{needle.session_id}",
        f"/explorer/users/{needle.user_id}",
        f"/explorer/compare?run={needle.session_runs[0]}&run={needle.session_runs[1]}",
    ]
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        _login(page, base, keys.viewer)
        problems = {}
        for href in pages:
            resp = page.goto(f"{base}{href}")
            assert resp is not None, href
            assert resp.status == 200, href
            problems[href] = _axe(page)
    found = {href: v for href, v in problems.items() if v}
    assert not found, json.dumps(found, indent=1)
