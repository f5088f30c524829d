"""The overview, the eval run view and table exports in Chromium; axe-core on every page.

axe-core comes from the npm registry at test time (``make browser`` puts it in
``.cache/axe-core/``); the server never serves it.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from daytwo.server import create_app
from daytwo.server.dashboard import NAV
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.evals import EvalAlert
from daytwo.store.tables.runtime import RunRecord
from daytwo.testing.seed_runs import seed_runs

from .helpers import make_keys
from .live import chromium, live_server
from .test_health import make_tagged_runs

AXE_JS = Path(__file__).resolve().parents[2] / ".cache" / "axe-core" / "axe.min.js"

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


def _app(settings: Settings, store: Store) -> FastAPI:
    return create_app(settings, store, with_runtime=False)


def _login(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url


def _cells(page: Any, table: str, column: int) -> list[str]:
    return [
        c.strip()
        for c in page.locator(f"#{table} tbody tr td:nth-child({column})").all_inner_texts()
    ]


def test_overview_window_switch_alert_link_and_local_times(
    settings: Settings, store: Store
) -> None:
    keys = make_keys(store)
    now = utcnow()
    seed_runs(store, 3000, seed=11, days=30, now=now)
    _base_run, cand = make_tagged_runs(store)
    with store.session(write=True) as s:
        s.add(
            EvalAlert(
                run_id=cand,
                agent="calc",
                set_name="tagged",
                metric="exact_match",
                baseline_mean=1.0,
                recent_mean=0.5,
                delta=-0.5,
                detail={},
                created_at=now - timedelta(days=3),
            )
        )
    app = _app(settings, store)
    with live_server(app) as base, chromium() as browser:
        context = browser.new_context(
            timezone_id="Asia/Tokyo", viewport={"width": 1280, "height": 900}
        )
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        _login(page, base, keys.viewer)
        page.goto(f"{base}/")
        assert page.locator("nav.windows a.active").inner_text() == "24 h"
        day_runs = int(_cells(page, "agent-health", 2)[0])
        # The alert is three days old: not open in the 24 h window, open in 7 days.
        assert "eval watch" not in _cells(page, "alerts", 1)
        page.click("nav.windows a[data-window='7d']")
        page.wait_for_url(re.compile(r".*/\?window=7d$"))
        assert page.locator("nav.windows a.active").inner_text() == "7 days"
        week_runs = int(_cells(page, "agent-health", 2)[0])
        assert week_runs > day_runs > 0
        assert _cells(page, "alerts", 1).count("eval watch") == 1
        row = page.locator("#alerts tbody tr", has_text="exact_match 1.000")
        # Dates show in the reader's zone (Tokyo, UTC+9), the UTC time in the title.
        stamp = page.locator("#alerts time").first
        iso = stamp.get_attribute("datetime")
        assert iso is not None
        assert "GMT+9" in stamp.inner_text() or "JST" in stamp.inner_text()
        assert stamp.get_attribute("title") == f"{iso} (UTC)"
        assert page.locator("#time-zone").inner_text() == "times in Asia/Tokyo"
        # The alert's evidence is the eval run view of the run that raised it.
        row.locator("a.evidence").click()
        page.wait_for_url(re.compile(rf".*/evals/runs/{cand}\?metric=exact_match$"))
        assert page.locator("h1").inner_text().startswith(f"Eval run {cand[:12]}")
        assert page.locator("#f-metric").input_value() == "exact_match"
        page.goto(f"{base}/?window=30d")
        assert int(_cells(page, "agent-health", 2)[0]) > week_runs
        assert page.locator("#agent-health svg.spark").count() >= 3
        assert errors == []
        context.close()


def test_eval_run_view_filters_in_the_browser(settings: Settings, store: Store) -> None:
    keys = make_keys(store)
    _base_run, cand = make_tagged_runs(store)
    app = _app(settings, store)
    with live_server(app) as base, chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _login(page, base, keys.viewer)
        # From the evals page, the newest run of the set is one click away.
        page.goto(f"{base}/evals")
        page.locator("#eval-runs-tagged tbody a").first.click()
        page.wait_for_url(re.compile(rf".*/evals/runs/{cand}$"))
        assert len(_cells(page, "cases", 1)) == 6
        assert page.locator("#intervals svg .interval-row").count() >= 2
        page.select_option("#f-tag", "carry")
        page.select_option("#f-metric", "exact_match")
        page.click("#case-filters button[type=submit]")
        page.wait_for_url(re.compile(r".*tag=carry.*"))
        assert _cells(page, "cases", 1) == ["c3", "c4", "c5"]
        assert set(_cells(page, "cases", 3)) == {"0.000"}
        page.select_option("#f-tag", "easy")
        page.click("#case-filters button[type=submit]")
        page.wait_for_url(re.compile(r".*tag=easy.*"))
        assert _cells(page, "cases", 1) == ["c0", "c1", "c2"]
        page.fill("#f-below", "0.5")
        page.click("#case-filters button[type=submit]")
        page.wait_for_url(re.compile(r".*below=0.5.*"))
        assert "No case matches these filters" in page.locator("#cases").inner_text()


def test_export_links_download_the_filtered_table(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    keys = make_keys(store)
    seed_runs(store, 400, seed=13, days=3)
    app = _app(settings, store)
    with live_server(app) as base, chromium() as browser:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        _login(page, base, keys.viewer)
        page.goto(f"{base}/runs?status=failed")
        shown = [
            a.get_attribute("href") for a in page.locator("#runs tbody td:first-child a").all()
        ]
        assert shown
        with page.expect_download() as info:
            page.click("a.export-csv")
        path = tmp_path / "runs.csv"
        info.value.save_as(path)
        assert info.value.suggested_filename == "runs-runs.csv"
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"))))
        assert rows[0][:3] == ["run", "agent", "status"]
        assert [f"/runs/{r[0]}" for r in rows[1:]] == shown
        assert {r[2] for r in rows[1:]} == {"failed"}
        with page.expect_download() as info:
            page.click("a.export-json")
        jpath = tmp_path / "runs.json"
        info.value.save_as(jpath)
        records = json.loads(jpath.read_text(encoding="utf-8"))
        assert [r["run"] for r in records] == [r[0] for r in rows[1:]]
        # The overview's tables export too, with the window of the page.
        page.goto(f"{base}/?window=7d")
        link = page.locator("a.export-json").first.get_attribute("href")
        assert link == "/?window=7d&export=alerts&format=json"
        context.close()


def _axe(page: Any) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(AXE_JS))
    result = page.evaluate(
        """async () => (await axe.run(document, {
             runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}
           })).violations.map(v => ({id: v.id, impact: v.impact,
             nodes: v.nodes.slice(0, 5).map(
               n => n.target.join(' ') + ' :: ' + n.failureSummary)}))"""
    )
    return list(result)


def test_every_page_passes_axe_core(settings: Settings, store: Store) -> None:
    if not AXE_JS.exists():
        pytest.skip("axe-core is not in .cache/axe-core: run `make browser` (npm pack axe-core)")
    keys = make_keys(store)
    seed_runs(store, 500, seed=17, days=3)
    _base_run, cand = make_tagged_runs(store)
    with store.session() as s:
        run_id = s.scalar(
            sa.select(RunRecord.id).where(RunRecord.principal.startswith("acme/")).limit(1)
        )
    app = _app(settings, store)
    pages = [href for href, _ in NAV] + [
        "/?window=30d",
        f"/evals/runs/{cand}",
        f"/evals/runs/{cand}?tag=carry",
        f"/runs/{run_id}",
    ]
    with live_server(app) as base, chromium() as browser:
        # The page's CSP (script-src 'self') would refuse the test's own axe script.
        page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)
        page.goto(f"{base}/login")
        problems = {"/login": _axe(page)}
        _login(page, base, keys.viewer)
        for href in pages:
            resp = page.goto(f"{base}{href}")
            assert resp is not None
            problems[href] = _axe(page)
    found = {href: v for href, v in problems.items() if v}
    assert not found, json.dumps(found, indent=1)
