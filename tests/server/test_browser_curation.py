"""Curation and review in a real browser: add a run to a golden set, accept a synthesized
case, two reviewers label five pairs and the page shows Cohen's κ."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.server import create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

from .conftest import make_runtime
from .helpers import make_keys
from .live import chromium, live_server
from .test_curation import _prefers_real_answers, judged_runs

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
# As in test_browser.py: `DAYTWO_UPDATE_SCREENSHOTS=1` refreshes the README's images.
UPDATE_DOCS = os.environ.get("DAYTWO_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
def judge_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=_prefers_real_answers) as server:
        yield server


def _login(browser: Any, base: str, key: str, errors: list[str]) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{base}/login")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login" not in page.url
    return page


def test_add_run_accept_synthesized_and_label_pairs_for_kappa(
    settings: Settings,
    store: Store,
    model_server: ScriptedModelServer,
    judge_server: ScriptedModelServer,
    tmp_path: Path,
) -> None:
    keys = make_keys(store)
    app = create_app(settings, store, runtime=make_runtime(settings, store, model_server.base_url))
    judged_runs(store, judge_server.base_url)  # acme's set "arith" v1, 6 pairwise verdicts
    GoldenSets(store).propose(
        "arith",
        [Case(key="syn-1", input="what is 12 + 30?", expected_output="42")],
        provenance={"source": "synthesis", "method": "paraphrase"},
    )
    errors: list[str] = []
    with live_server(app) as base, chromium() as browser:
        auth = {"Authorization": f"Bearer {keys.operator}"}
        r = httpx.post(
            f"{base}/api/v1/runs",
            json={"agent": "support", "inputs": {"question": "Where is my order A-1001?"}},
            headers=auth,
        )
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        deadline = time.monotonic() + 120  # generous: a shared 2-core machine
        while httpx.get(f"{base}/api/v1/runs/{run_id}", headers=auth).json()["status"] != (
            "succeeded"
        ):
            assert time.monotonic() < deadline, "the run did not succeed"
            time.sleep(0.2)

        page = _login(browser, base, keys.operator, errors)
        # The run page offers the same form as the explorer's per-row link.
        page.goto(f"{base}/runs/{run_id}")
        assert page.get_attribute("#add-to-set", "href") == f"/evals/add?run={run_id}"
        # 1. From the explorer's row of the run, add it to a golden set with an edited
        # expected output (the explorer filtered to this run's agent and status).
        page.goto(f"{base}/explorer?agent=support&status=succeeded")
        row = page.locator("tr", has=page.locator(f'a[href="/runs/{run_id}"]'))
        assert row.count() == 1
        row.locator("a.add-to-set").click()
        page.wait_for_url(re.compile(r".*/evals/add\?run="))
        assert run_id in page.url
        assert "ships tomorrow" in page.input_value("#expected_output")  # pre-filled
        assert page.locator("#run-input").inner_text() == "Where is my order A-1001?"
        page.select_option("#set", "arith")
        page.fill("#expected_output", "Order A-1001 ships tomorrow; tracking comes by email.")
        page.click("#add-form button[type=submit]")
        page.wait_for_url(re.compile(r".*/evals/sets/arith\?version=2$"))
        versions = page.locator("#versions").inner_text()
        assert "v2" in versions
        assert "promoted" in versions
        cases = page.locator("#cases").inner_text()
        assert "tracking comes by email" in cases
        assert "1 added" in page.locator("#diff").inner_text()
        page.screenshot(path=str(tmp_path / "golden-set.png"), full_page=True)

        # 2. Accept the synthesized case from the review queue: a new version.
        assert "syn-1" in page.locator("#review-queue").inner_text()
        page.click("#review-queue .accept-form button[type=submit]")
        try:
            page.wait_for_url(re.compile(r".*/evals/sets/arith$"), timeout=30_000)
        except Exception:
            raise AssertionError(page.locator("#review-queue").inner_text()) from None
        assert "0 waiting" in page.locator("#review-queue h2").inner_text()
        assert "v3" in page.locator("#versions").inner_text()
        assert "syn-1" in page.locator("#cases").inner_text()

        # 3. Two reviewers label five pairs each; each sees a pair in the other order.
        wanted = {
            keys.operator: {"c0": "tie", "c1": "tie", "c2": "baseline", "c3": "baseline"},
            keys.admin: {"c0": "tie", "c1": "candidate", "c2": "baseline", "c3": "baseline"},
        }
        for labels in wanted.values():
            labels["c4"] = "baseline"
        seen: dict[str, list[str]] = {}
        reviewer_pages = {
            keys.operator: page,
            keys.admin: _login(browser, base, keys.admin, errors),
        }
        for key, labels in wanted.items():
            p = reviewer_pages[key]
            p.goto(f"{base}/evals/review")
            with p.expect_navigation():
                p.click("a.judge-link:text('pairwise@1')")
            for _ in range(5):
                case = p.locator("#item-case").inner_text()
                seen.setdefault(case, []).append(p.locator("#answer-a").inner_text())
                p.check(f"#label-form input[name=label][value={labels[case]}]")
                with p.expect_navigation():
                    p.click("#label-form button[type=submit]")
        assert sorted(seen) == ["c0", "c1", "c2", "c3", "c4"]
        # "no idea" (the candidate's answer on c3, c4) is A for one reviewer, B for the other.
        for case in ("c3", "c4"):
            assert sorted(a == "no idea" for a in seen[case]) == [False, True], seen[case]
        page.reload()
        # κ by hand: reviewers agree on 4 of 5, p_e = .44 -> .36/.56 = 0.64; the judge
        # (tie, tie, tie, baseline, baseline) vs the ten labels: .28/.58 = 0.48.
        agreement = page.locator("#agreement").inner_text()
        assert page.locator("#kappa-reviewers").inner_text() == "0.64", agreement
        assert page.locator("#kappa-judge").inner_text() == "0.48"
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    assert errors == []
    if UPDATE_DOCS:
        for name in ("golden-set", "review"):
            shutil.copyfile(tmp_path / f"{name}.png", DOCS_SCREENSHOTS / f"{name}.png")
