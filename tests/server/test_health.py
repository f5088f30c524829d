"""The overview (health), the eval run view and table exports, over TestClient.

Figures are checked against the same runs recomputed in Python from their rows; pages
and exports are checked as another tenant too.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import Counter, defaultdict
from datetime import timedelta

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.runner import AgentResult, CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.models.types import Usage
from daytwo.server.auth import Principal
from daytwo.server.exports import tables_in
from daytwo.server.health import WINDOWS, quantile, run_health
from daytwo.server.ownership import claim
from daytwo.server.tenancy import tenant_of
from daytwo.store import Store
from daytwo.store.base import utcnow
from daytwo.store.tables.evals import EvalAlert, EvalResult
from daytwo.store.tables.models import CanaryCheck
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing.seed_runs import seed_runs

from .helpers import Keys


def session(c: TestClient, key: str) -> TestClient:
    """Log ``c`` in to the dashboard with ``key`` (a cookie session, as a browser)."""
    form = c.get("/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]*)"', form)
    data = {"key": key, "next": "/", "csrf_token": token.group(1) if token else ""}
    r = c.post("/login", data=data, follow_redirects=False)
    assert r.status_code == 303, r.text
    return c


def _runs(store: Store) -> list[RunRecord]:
    with store.session() as s:
        return list(s.scalars(sa.select(RunRecord)))


def test_run_health_equals_the_runs_recomputed(store: Store) -> None:
    now = utcnow()
    seed_runs(store, 3000, seed=3, days=10, now=now)
    rows = _runs(store)
    for window in WINDOWS.values():
        if window.hourly:
            first_bucket = now.replace(minute=0, second=0, microsecond=0) - timedelta(
                hours=window.steps - 1
            )
        else:
            first_bucket = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(
                days=window.steps - 1
            )
        for tenant in ("default", "acme", "globex"):
            health = run_health(store, tenant, window, until=now)
            mine = [
                r
                for r in rows
                if tenant_of(r.principal) == tenant and now - window.length <= r.created_at <= now
            ]
            assert health.total.runs == len(mine) > 0
            by_agent: dict[tuple[str, int], list[RunRecord]] = defaultdict(list)
            for r in mine:
                by_agent[(r.agent_name, r.agent_version)].append(r)
            assert {(h.agent, h.version) for h in health.agents} == set(by_agent)
            for h in [health.total, *health.agents]:
                runs = mine if h.version is None else by_agent[(h.agent, h.version)]
                status = Counter(r.status for r in runs)
                assert (h.runs, h.succeeded, h.failed) == (
                    len(runs),
                    status["succeeded"],
                    status["failed"],
                )
                assert h.cost_usd == pytest.approx(sum(r.cost_usd for r in runs))
                assert h.tokens == sum(r.tokens for r in runs)
                failed = [r for r in runs if r.status in ("failed", "cancelled")]
                assert sum(h.errors.values()) == len(failed)
                # The series covers whole hours / days: the oldest partial one is left out.
                in_series = [r for r in runs if r.created_at >= first_bucket]
                assert sum(h.series_runs) == len(in_series)
                latencies = [
                    (r.finished_at - r.created_at).total_seconds() * 1000
                    for r in runs
                    if r.finished_at is not None and r.status in ("succeeded", "failed")
                ]
                for q, got in ((0.5, h.p50_ms), (0.95, h.p95_ms)):
                    exact = float(np.quantile(latencies, q, method="inverted_cdf"))
                    assert got is not None
                    assert abs(got - exact) / exact <= 0.033, (h.label, q, got, exact)
    # The error kinds are the runtime's wording up to the first colon.
    health = run_health(store, "acme", WINDOWS["30d"], until=now)
    assert "cancelled" in health.total.errors
    assert all(":" not in kind for kind in health.total.errors)


def test_quantile_of_a_histogram() -> None:
    assert quantile({}, 0.5) is None
    # 100 values in bucket 110 (e^(110/16) ≈ 972 ms), 5 in bucket 130 (≈ 3,400 ms).
    hist = {110: 95, 130: 5}
    assert quantile(hist, 0.5) == pytest.approx(math.exp(110.5 / 16))
    assert quantile(hist, 0.95) == pytest.approx(math.exp(110.5 / 16))
    assert quantile(hist, 0.96) == pytest.approx(math.exp(130.5 / 16))


def test_overview_windows_figures_and_bad_window(
    client: TestClient, keys: Keys, store: Store
) -> None:
    now = utcnow()
    seed_runs(store, 2000, seed=5, days=20, now=now)
    c = session(client, keys.viewer)
    pages = {w: c.get(f"/?window={w}") for w in WINDOWS}
    for w, page in pages.items():
        assert page.status_code == 200, page.text
        total = run_health(store, "acme", WINDOWS[w]).total
        table = tables_in(page.text)["agent-health"]
        first = dict(zip(table[0], table[1][0], strict=True))
        assert first["agent@version"] == "all agents (acme)"
        assert int(first["runs"]) == total.runs
        assert f'href="/?window={w}" class="active"' in page.text
    assert int(tables_in(pages["24h"].text)["agent-health"][1][0][1]) < int(
        tables_in(pages["30d"].text)["agent-health"][1][0][1]
    )
    # Only acme's agents, never another tenant's.
    assert "globex-research" not in pages["30d"].text
    assert "acme-support@" in pages["30d"].text
    bad = c.get("/?window=1y")
    assert bad.status_code == 400
    assert "unknown window" in bad.text
    assert "24h, 7d, 30d" in bad.text


def test_empty_overview_names_the_commands(client: TestClient, keys: Keys) -> None:
    page = session(client, keys.other_viewer).get("/")
    assert page.status_code == 200
    for command in ("daytwo runs start", "daytwo tools register", "daytwo kb ingest"):
        assert command in page.text, command
    assert "daytwo eval sets create" in page.text


TAGGED = [
    Case(key=f"c{i}", input=f"what is {i} plus {i}?", expected_output=str(2 * i), tags=[tag])
    for i, tag in enumerate(["easy", "easy", "easy", "carry", "carry", "carry"])
]


def make_tagged_runs(store: Store, trace_run: str | None = None) -> tuple[str, str]:
    """Two runs of a tagged set owned by acme; the candidate fails every 'carry' case."""
    GoldenSets(store).create("tagged")
    GoldenSets(store).add("tagged", TAGGED, note="first")
    claim(store, "eval_set", "tagged", "acme", "eval set", exists=False)
    runs = EvalRuns(store)
    by = {"started_by": "acme/key:0123456789ab"}

    def good(case: Case) -> AgentResult:
        return AgentResult(output=str(case.expected_output), trace_id=trace_run)

    def worse(case: Case) -> AgentResult:
        out = str(case.expected_output) if "carry" not in case.tags else "no idea"
        return AgentResult(output=out, trace_id=trace_run)

    base = runs.run(CallableRunner(good, name="calc", version="1"), "tagged", config=by)
    cand = runs.run(CallableRunner(worse, name="calc", version="2"), "tagged", config=by)
    return base.id, cand.id


def _add_run(store: Store, run_id: str, principal: str) -> None:
    now = utcnow()
    with store.session(write=True) as s:
        s.add(
            RunRecord(
                id=run_id,
                agent_name="calc",
                agent_version=2,
                status="succeeded",
                inputs={},
                outputs={},
                decisions=[],
                principal=principal,
                created_at=now - timedelta(seconds=2),
                finished_at=now,
            )
        )


def test_eval_run_view_filters_trace_links_and_interval(
    client: TestClient, keys: Keys, store: Store
) -> None:
    _add_run(store, "t" * 32, "acme/key:0123456789ab")
    base, cand = make_tagged_runs(store, trace_run="t" * 32)
    c = session(client, keys.viewer)
    page = c.get(f"/evals/runs/{cand}?metric=exact_match")
    assert page.status_code == 200, page.text
    _header, rows = tables_in(page.text)["cases"]
    assert [r[0] for r in rows] == [f"c{i}" for i in range(6)]
    assert f'href="/evals/runs/{base}"' in page.text  # the previous run is the baseline
    assert page.text.count('href="/runs/' + "t" * 32 + '"') == 6  # each case's trace
    # The interval of exact_match lies wholly below zero (three of six cases lost).
    assert 'data-label="exact_match"' in page.text
    carry = tables_in(c.get(f"/evals/runs/{cand}?metric=exact_match&tag=carry").text)["cases"]
    assert [r[0] for r in carry[1]] == ["c3", "c4", "c5"]
    assert {r[carry[0].index("exact_match")] for r in carry[1]} == {"0.0"}
    assert {r[carry[0].index("Δ")] for r in carry[1]} == {"-1.0"}
    below = tables_in(c.get(f"/evals/runs/{cand}?metric=exact_match&below=0.5").text)["cases"]
    assert [r[0] for r in below[1]] == ["c3", "c4", "c5"]
    bad = c.get(f"/evals/runs/{cand}?metric=nope")
    assert bad.status_code == 400
    assert "metrics of this run" in bad.text
    bad = c.get(f"/evals/runs/{cand}?tag=nope")
    assert bad.status_code == 400
    assert "tags of this run: carry, easy" in bad.text
    bad = c.get(f"/evals/runs/{cand}?below=x")
    assert bad.status_code == 400
    assert "is not a number" in bad.text
    # Another tenant: the run does not exist, and the export neither.
    theirs = session(TestClient(client.app), keys.other_viewer)
    assert theirs.get(f"/evals/runs/{cand}").status_code == 404
    assert theirs.get(f"/evals/runs/{cand}?export=cases&format=json").status_code == 404
    # A baseline of another tenant's cannot be named either.
    assert c.get(f"/evals/runs/{cand}?baseline=nope").status_code == 404


def _span(trace_id: str, span_id: str, name: str, tenant: str, **extra: object) -> SpanRow:
    now = utcnow()
    return SpanRow(
        span_id=span_id,
        trace_id=trace_id,
        parent_span_id=extra.pop("parent", None),
        name=name,
        kind="INTERNAL",
        start_time=now - timedelta(milliseconds=40),
        end_time=now,
        duration_ms=40.0,
        status="OK",
        attributes={},
        tenant=tenant,
        principal=f"{tenant}/key:0123456789ab",
        **extra,
    )


def test_an_external_cases_trace_without_a_run_has_its_own_page(
    client: TestClient, keys: Keys, store: Store
) -> None:
    """An eval case of an external target links to the spans its agent exported, though
    no run row (``otlp-<trace id>``) stands for that trace; only the tenant's spans."""
    _base, cand = make_tagged_runs(store)
    with store.session() as s:
        traces = dict(
            s.execute(
                sa.select(EvalResult.case_key, EvalResult.trace_id).where(EvalResult.run_id == cand)
            ).all()
        )
    tid = traces["c0"]  # each case is the root of its own trace
    with store.session(write=True) as s:
        s.add(_span(tid, "a" * 16, "invoke_agent shop-bot", "acme"))
        s.add(
            _span(
                tid,
                "b" * 16,
                "chat gpt-4o-mini",
                "acme",
                parent="a" * 16,
                operation="chat",
                model="gpt-4o-mini",
                input_tokens=120,
                output_tokens=30,
                cost_usd="0.000036",
                cost_status="priced",
            )
        )
        # Another tenant's span in the same trace id: never shown to acme, nor counted.
        s.add(_span(tid, "c" * 16, "chat secret-model", "globex", cost_usd="9.5"))
    c = session(client, keys.viewer)
    page = c.get(f"/evals/runs/{cand}")
    assert page.status_code == 200, page.text
    # c0's trace holds acme's spans: linked; the other cases' traces hold none: not.
    assert page.text.count('href="/traces/') == 1
    assert f'href="/traces/{tid}"' in page.text
    assert traces["c1"][:16] in page.text
    assert f'href="/runs/otlp-{tid}"' not in page.text  # no run row stands for it
    trace = c.get(f"/traces/{tid}")
    assert trace.status_code == 200, trace.text
    assert "chat gpt-4o-mini" in trace.text
    assert "invoke_agent shop-bot" in trace.text
    assert "$0.000036" in trace.text  # the ledger's exact cost of acme's spans alone
    assert "secret-model" not in trace.text
    assert "$9.5" not in trace.text  # globex's cost ("9.5" alone matched a bar width)
    # Another tenant's viewer: acme's spans are not theirs (their own span is all they
    # would see); a tenant with no span in the trace gets a 404.
    theirs = session(TestClient(client.app), keys.other_viewer)
    other = theirs.get(f"/traces/{tid}")
    assert "gpt-4o-mini" not in other.text
    assert "shop-bot" not in other.text
    assert theirs.get(f"/traces/{'cd' * 16}").status_code == 404
    assert c.get(f"/traces/{'cd' * 16}").status_code == 404
    bad = c.get("/traces/not-a-trace")
    assert bad.status_code == 400
    assert "is not a trace id" in bad.text


def test_exports_are_the_page_tables_with_the_page_filters(
    client: TestClient, keys: Keys, store: Store
) -> None:
    seed_runs(store, 500, seed=9, days=5)
    c = session(client, keys.viewer)
    page = c.get("/runs?status=failed")
    header, rows = tables_in(page.text)["runs"]
    assert rows
    r = c.get("/runs?status=failed&export=runs&format=csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="runs-runs.csv"' in r.headers["content-disposition"]
    got = list(csv.reader(io.StringIO(r.text)))
    assert got[0] == header
    assert got[1:] == rows
    assert {row[header.index("status")] for row in got[1:]} == {"failed"}
    # Full ids and UTC timestamps, not what the cells abbreviate.
    with store.session() as s:
        ids = {
            rid
            for rid, principal in s.execute(sa.select(RunRecord.id, RunRecord.principal))
            if tenant_of(principal) == "acme"
        }
    assert {row[0] for row in got[1:]} <= ids
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row[-1]) for row in got[1:])
    j = c.get("/runs?status=failed&export=runs&format=json")
    assert j.headers["content-type"].startswith("application/json")
    records = j.json()
    assert [rec["run"] for rec in records] == [row[0] for row in got[1:]]
    assert all(isinstance(rec["tokens"], int) for rec in records)
    # The overview's table: numbers as numbers, errors by kind as an object.
    data = c.get("/?window=7d&export=agent-health&format=json").json()
    assert data[0]["agent@version"] == "all agents (acme)"
    assert data[0]["runs"] == run_health(store, "acme", WINDOWS["7d"]).total.runs
    assert isinstance(data[0]["errors by kind"], dict)
    # Bad requests: one clear message each.
    r = c.get("/runs?export=runs&format=xlsx")
    assert r.status_code == 400
    assert "use format=csv or format=json" in r.text
    r = c.get("/runs?export=nope")
    assert r.status_code == 404
    assert "tables on this page: runs" in r.text
    # Another tenant's export of the same page holds none of acme's runs.
    theirs = session(TestClient(client.app), keys.other_viewer)
    other = theirs.get("/runs?export=runs&format=json").json()
    assert not {rec["run"] for rec in other} & ids


def test_alerts_link_to_their_evidence_and_stay_in_their_tenant(
    client: TestClient, keys: Keys, store: Store
) -> None:
    _base, cand = make_tagged_runs(store)
    now = utcnow()
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
                created_at=now,
            )
        )
        s.add(
            CanaryCheck(
                id="k" * 32,
                record_id="r" * 32,
                profile="openai/gpt-4o-mini",
                fingerprint={},
                exact_match_rate=0.5,
                logprob_divergence=0.2,
                passed=False,
                details={"prompts": [], "fingerprint_changes": {"quant": ["q8", "q4"]}},
                created_at=now,
            )
        )
    limits = client.app.state.model_gateway.limits  # type: ignore[attr-defined]
    limits.set("tenant", "acme", tenant="acme", tokens_per_day=100)
    spender = Principal(key_id="a" * 32, name="", tenant="acme", role="operator")
    limits.record(spender, Usage(input_tokens=80, output_tokens=10), None)
    c = session(client, keys.viewer)
    page = c.get("/")
    alerts = tables_in(page.text)["alerts"]
    kinds = [row[0] for row in alerts[1]]
    assert "eval watch" in kinds
    budget = [row for row in alerts[1] if row[0] == "budget"]
    assert len(budget) == 1
    assert "90% of the daily tokens budget" in budget[0][2]
    evidence = {row[0]: row[-1] for row in alerts[1]}
    assert evidence["eval watch"] == f"/evals/runs/{cand}?metric=exact_match"
    assert c.get(evidence["eval watch"]).status_code == 200
    # acme's routes use no profile: the host's canary is not acme's alert.
    assert "canary" not in kinds
    assert c.get("/models/canary/" + "k" * 32).status_code == 404
    # The host's own tenant sees it and its evidence page.
    ks_default = _key(store, "default")
    d = session(TestClient(client.app), ks_default)
    dpage = d.get("/")
    drows = tables_in(dpage.text)["alerts"][1]
    assert [r[-1] for r in drows if r[0] == "canary"] == ["/models/canary/" + "k" * 32]
    evidence_page = d.get("/models/canary/" + "k" * 32)
    assert evidence_page.status_code == 200
    assert "q8" in evidence_page.text
    assert "eval watch" not in {r[0] for r in drows}
    # globex sees none of them.
    g = session(TestClient(client.app), keys.other_viewer).get("/")
    assert tables_in(g.text)["alerts"][1] == []


def _key(store: Store, tenant: str) -> str:
    from daytwo.server.auth import KeyStore

    return KeyStore(store).create(role="viewer", tenant=tenant, name=f"{tenant} viewer")[1]


def test_time_elements_carry_utc(client: TestClient, keys: Keys, store: Store) -> None:
    seed_runs(store, 50, seed=1, days=1)
    page = session(client, keys.viewer).get("/runs")
    stamps = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page.text)
    assert stamps
    for iso, text in stamps:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso)
        assert text == iso[:10] + " " + iso[11:16] + " UTC"
