"""Evals routes: sets, runs, report, gate; tenant isolation."""

from __future__ import annotations

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

    base = runs.run(CallableRunner(good, name="calc", version="1"), "arith")
    cand = runs.run(CallableRunner(worse, name="calc", version="2"), "arith")
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
