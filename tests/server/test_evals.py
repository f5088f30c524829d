"""Evals routes: sets, runs, report, gate; tenant isolation."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.runner import CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.server.ownership import claim
from daytwo.store import Store

from .helpers import Keys

CASES = [
    Case(key=f"c{i}", input=f"what is {i} plus {i}?", expected_output=str(2 * i)) for i in range(6)
]


def make_runs(store: Store) -> tuple[str, str]:
    GoldenSets(store).create("arith")
    GoldenSets(store).add("arith", CASES, note="first")
    claim(store, "eval_set", "arith", "acme", "eval set", exists=False)  # as if made via API
    runs = EvalRuns(store)

    def good(case: Case) -> str:
        return str(case.expected_output)

    def worse(case: Case) -> str:
        return str(case.expected_output) if case.key in {"c0", "c1", "c2"} else "no idea"

    by = {"started_by": "acme/key:0123456789ab"}  # as if started through the API
    base = runs.run(CallableRunner(good, name="calc", version="1"), "arith", config=by)
    cand = runs.run(CallableRunner(worse, name="calc", version="2"), "arith", config=by)
    return base.id, cand.id


def test_evals_routes_and_isolation(client: TestClient, keys: Keys, store: Store) -> None:
    base, cand = make_runs(store)
    c = client
    mine = Keys.header(keys.viewer)
    sets = c.get("/api/v1/evals/sets", headers=mine).json()
    assert [(s["name"], s["versions"][-1]["cases"]) for s in sets] == [("arith", 6)]
    runs = c.get("/api/v1/evals/runs", headers=mine).json()
    assert [r["id"] for r in runs] == [cand, base]
    one = c.get(f"/api/v1/evals/runs/{cand}", headers=mine).json()
    metrics = one["summary"]["metrics"]
    assert metrics
    assert metrics["exact_match"]["mean"] == 0.5
    report = c.get(f"/api/v1/evals/runs/{cand}/report", headers=mine)
    assert report.status_code == 200
    assert report.headers["content-type"].startswith("text/html")
    r = c.post(
        "/api/v1/evals/gate",
        json={"candidate": cand, "baseline": base, "metric": "exact_match"},
        headers=mine,
    )
    assert r.status_code == 200, r.text
    assert r.json()["passed"] is False

    theirs = Keys.header(keys.other_admin)
    assert c.get("/api/v1/evals/sets", headers=theirs).json() == []
    assert c.get("/api/v1/evals/runs", headers=theirs).json() == []
    assert c.get(f"/api/v1/evals/runs/{cand}", headers=theirs).status_code == 404
    assert c.get(f"/api/v1/evals/runs/{cand}/report", headers=theirs).status_code == 404
    r = c.post(
        "/api/v1/evals/gate",
        json={"candidate": cand, "baseline": base, "metric": "x"},
        headers=theirs,
    )
    assert r.status_code == 404


SUPPORT_CASES = [
    Case(
        key=f"s{i}",
        input=f"Where is my order A-100{i}?",
        expected_output="Your order A-1001 ships tomorrow.",
        metadata={"inputs": {"order_id": f"A-100{i}"}},
    )
    for i in range(1, 4)
]


def _wait(c: TestClient, run_id: str, key: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = c.get(f"/api/v1/evals/runs/{run_id}", headers=Keys.header(key))
        assert r.status_code == 200, r.text
        if r.json()["status"] != "running":
            return dict(r.json())
        time.sleep(0.2)
    raise AssertionError(f"eval run {run_id} still running after 120 s")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_start_an_eval_run_through_the_api(
    run_client: TestClient, keys: Keys, store: Store
) -> None:
    GoldenSets(store).create("support")
    GoldenSets(store).add("support", SUPPORT_CASES)
    claim(store, "eval_set", "support", "acme", "eval set", exists=False)
    c = run_client
    body = {"agent": "support", "set": "support", "concurrency": 2}

    viewer = c.post("/api/v1/evals/runs", json=body, headers=Keys.header(keys.viewer))
    assert viewer.status_code == 403, viewer.text
    other = c.post("/api/v1/evals/runs", json=body, headers=Keys.header(keys.other_admin))
    assert other.status_code == 404, other.text  # another tenant's set does not exist for them
    bad = c.post(
        "/api/v1/evals/runs",
        json={**body, "agent": "python:os:system"},
        headers=Keys.header(keys.operator),
    )
    assert bad.status_code == 400, bad.text
    missing = c.post(
        "/api/v1/evals/runs", json={**body, "set": "nope"}, headers=Keys.header(keys.operator)
    )
    assert missing.status_code == 404

    r = c.post("/api/v1/evals/runs", json=body, headers=Keys.header(keys.operator))
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["status"] == "running"
    assert started["set_name"] == "support"
    assert started["agent"] == "support"
    done = _wait(c, started["id"], keys.viewer)
    assert done["status"] == "completed", done
    summary = done["summary"]
    assert summary["cases"] == 3
    assert summary["errors"] == 0
    assert summary["metrics"]["fuzzy_match"]["mean"] > 0.5
    # Cost and tokens come from each case's trace: the scripted model's chat spans.
    assert summary["metrics"]["input_tokens"]["mean"] > 0
    assert summary["metrics"]["cost_usd"]["mean"] > 0
    listed = c.get("/api/v1/evals/runs", headers=Keys.header(keys.viewer)).json()
    assert [x["id"] for x in listed] == [started["id"]]
    theirs = Keys.header(keys.other_admin)
    assert c.get(f"/api/v1/evals/runs/{started['id']}", headers=theirs).status_code == 404
    assert c.get("/api/v1/evals/runs", headers=theirs).json() == []
