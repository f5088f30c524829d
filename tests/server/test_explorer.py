"""The trace explorer over a seeded store: filters, keyset pages, exports, sessions, compare."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.server.exports import export_rows
from daytwo.store import Store
from daytwo.store.tables.runtime import RunRecord
from daytwo.store.tables.tracing import SpanRow
from daytwo.testing.seed_runs import NEEDLE_PHRASE, SeededRuns, seed_runs

from .helpers import Keys
from .test_dashboard import login


@pytest.fixture
def seeded(store: Store) -> SeededRuns:
    return seed_runs(store, 900, seed=5, batch=300)


def _ids(page: str) -> list[str]:
    return re.findall(r'<tr data-href="/runs/([^"]+)"', page)


def _walk(c: TestClient, url: str) -> list[str]:
    """Every run id of a filtered table, following the next-page links."""
    ids: list[str] = []
    while url:
        r = c.get(url)
        assert r.status_code == 200, r.text[:500]
        ids += _ids(r.text)
        m = re.search(r'<a href="([^"]+)" id="next-page"', r.text)
        url = m.group(1).replace("&amp;", "&") if m else ""
    return ids


def _acme(store: Store) -> dict[str, RunRecord]:
    with store.session() as s:
        rows = s.scalars(sa.select(RunRecord).where(RunRecord.principal.like("acme/%")))
        return {r.id: r for r in rows}


def test_filters_find_the_one_failing_run(
    client: TestClient, keys: Keys, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    needle = seeded.needle
    r = client.get(f"/explorer?status=failed&q={NEEDLE_PHRASE.upper().replace(' ', '+')}")
    assert r.status_code == 200
    assert _ids(r.text) == [needle.run_id]
    r = client.get(
        f"/explorer?agent={needle.agent}&version={needle.version}&status=failed"
        f"&session={needle.session_id}&user={needle.user_id}"
    )
    assert _ids(r.text) == [needle.run_id]
    # Another tenant's viewer finds nothing, and gets 404 for its session and comparisons.
    login(client, keys.other_viewer)
    r = client.get(f"/explorer?q={NEEDLE_PHRASE.replace(' ', '+')}")
    assert r.status_code == 200
    assert _ids(r.text) == []
    assert needle.run_id not in r.text
    assert client.get(f"/explorer/sessions/{needle.session_id}").status_code == 404
    assert client.get(f"/explorer/users/{needle.user_id}").status_code == 404
    other = needle.session_runs[-1]
    r = client.get(f"/explorer/compare?run={needle.run_id}&run={other}")
    missing = client.get(f"/explorer/compare?run={'0' * 32}&run={other}")
    assert r.status_code == missing.status_code == 404  # as if the run did not exist
    assert "no run" in r.text
    assert other not in r.text


def test_pages_follow_a_keyset_cursor_without_gaps(
    client: TestClient, keys: Keys, store: Store, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    acme = _acme(store)
    newest_first = sorted(acme.values(), key=lambda r: (r.created_at, r.id), reverse=True)
    assert _walk(client, "/explorer?limit=37") == [r.id for r in newest_first]
    by_cost = sorted(acme.values(), key=lambda r: (r.cost_usd, r.id))
    assert _walk(client, "/explorer?sort=cost&order=asc&limit=200") == [r.id for r in by_cost]
    walked = _walk(client, "/explorer?sort=latency&limit=100&status=succeeded")
    assert sorted(walked) == sorted(r.id for r in acme.values() if r.status == "succeeded")


def test_model_tool_cost_latency_and_time_filters_match_the_rows(
    client: TestClient, keys: Keys, store: Store, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    acme = _acme(store)
    with store.session() as s:
        owner = {
            sp.trace_id: sp.run_id
            for sp in s.scalars(sa.select(SpanRow).where(SpanRow.run_id.is_not(None)))
        }
        used: dict[str, set[str]] = {}
        for sp in s.scalars(
            sa.select(SpanRow).where(SpanRow.operation.in_(["chat", "execute_tool"]))
        ):
            what = sp.model if sp.operation == "chat" else sp.name.removeprefix("execute_tool ")
            used.setdefault(str(what), set()).add(owner[sp.trace_id])
    for name, kind in (
        ("claude-3-5-haiku-latest", "model"),
        ("gpt-4o", "model"),
        ("refunds_issue", "tool"),
    ):
        expected = sorted(rid for rid in used[name] if rid in acme)
        assert expected, name
        assert sorted(_walk(client, f"/explorer?{kind}={name}&limit=200")) == expected
    failed_refunds = {
        rid for rid in used["refunds_issue"] if acme.get(rid) and acme[rid].status == "failed"
    }
    assert set(_walk(client, "/explorer?tool=refunds_issue&status=failed")) == failed_refunds
    cheap = {rid for rid, r in acme.items() if 0.0005 <= r.cost_usd <= 0.001}
    assert set(_walk(client, "/explorer?cost_min=0.0005&cost_max=0.001&limit=200")) == cheap

    def latency(r: RunRecord) -> float | None:
        return (
            None if r.finished_at is None else (r.finished_at - r.created_at).total_seconds() * 1000
        )

    slow = {rid for rid, r in acme.items() if (latency(r) or -1) >= 2500}
    assert slow
    assert set(_walk(client, "/explorer?latency_min=2500&limit=200")) == slow
    mid = sorted(r.created_at for r in acme.values())[len(acme) // 2]
    since = mid.isoformat().replace("+00:00", "Z")
    later = {rid for rid, r in acme.items() if r.created_at >= mid}
    assert set(_walk(client, f"/explorer?since={since.replace('+', '%2B')}&limit=200")) == later
    external = {rid for rid in acme if rid.startswith("otlp-")}
    assert external
    assert set(_walk(client, "/explorer?kind=external")) == external


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=bogus", "filter status=&#39;bogus&#39; is not one of"),
        ("cost_min=abc", "filter cost_min=&#39;abc&#39; is not a number"),
        ("latency_max=-1", "is not a number of zero or more"),
        ("version=1.5", "is not a whole number"),
        ("since=yesterday", "is not an ISO 8601 date or time"),
        ("limit=5000", "is not between 1 and 200"),
        ("cost_min=2&cost_max=1", "filter cost_min is above cost_max"),
        ("cursor=bm9wZQ", "the page cursor is not one this table gave out"),
        ("colour=red", "unknown filter &#39;colour&#39;"),
        ("status=failed&status=running", "filter &#39;status&#39; is given twice"),
        ("agent=%3Cscript%3E", "is not a name"),
        ("q=" + "x" * 201, "at most 200 characters"),
        ("q=a%00b", "no control characters"),
    ],
)
def test_bad_filter_values_are_a_clear_400(
    client: TestClient, keys: Keys, query: str, message: str
) -> None:
    login(client, keys.viewer)
    r = client.get(f"/explorer?{query}")
    assert r.status_code == 400
    assert message in r.text
    assert "Traceback" not in r.text


def test_a_cursor_of_another_sort_is_refused(
    client: TestClient, keys: Keys, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    page = client.get("/explorer?sort=cost").text
    cursor = re.search(r"cursor=([^&\"]+)", page)
    assert cursor is not None
    r = client.get(f"/explorer?sort=tokens&cursor={cursor.group(1)}")
    assert r.status_code == 400
    assert "cursor" in r.text
    assert client.get("/explorer/compare?run=a").status_code == 400
    assert client.get("/explorer/export?format=xml").status_code == 400


def test_export_is_the_filtered_table(
    client: TestClient, keys: Keys, store: Store, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    acme = _acme(store)
    failed = {rid for rid, r in acme.items() if r.status == "failed"}
    r = client.get("/explorer/export?status=failed&format=csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["id"] for row in rows} == failed
    assert all(row["error"] for row in rows)
    r = client.get("/explorer/export?status=failed&format=json")
    data = json.loads(r.text)
    assert {d["id"] for d in data} == failed
    assert all(d["latency_ms"] is None or d["latency_ms"] >= 0 for d in data)


def test_export_escapes_spreadsheet_formulas() -> None:
    rows: list[dict[str, Any]] = [{"a": "=HYPERLINK(1)", "b": -3.5, "c": {"k": "+1"}}]
    text = export_rows(rows, ("a", "b", "c"), "csv", "t").body.decode()
    assert text.splitlines()[1] == '\'=HYPERLINK(1),-3.5,"{""k"": ""+1""}"'


def test_session_view_and_compare(
    client: TestClient, keys: Keys, store: Store, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    needle = seeded.needle
    r = client.get(f"/explorer/sessions/{needle.session_id}")
    assert r.status_code == 200
    ids = re.findall(r'<li data-href="/runs/([^"]+)"', r.text)
    assert ids == list(needle.session_runs)  # oldest first
    assert needle.user_id in r.text
    r = client.get(f"/explorer/users/{needle.user_id}")
    assert r.status_code == 200
    assert needle.run_id in r.text
    a, b = needle.session_runs[0], needle.session_runs[1]
    r = client.get(f"/explorer/compare?run={a}&run={b}")
    assert r.status_code == 200
    assert f'class="run-1">{a}' in r.text
    assert f'class="run-2">{b}' in r.text
    assert "step answer" in r.text or "step lookup" in r.text
    acme = _acme(store)
    delta = acme[b].cost_usd - acme[a].cost_usd
    assert f"{delta:+.6f}" in r.text


def _holds(r: RunRecord, fragment: str) -> bool:
    text = " ".join((json.dumps(r.inputs), json.dumps(r.outputs), r.error or "")).lower()
    return fragment.lower() in text


@pytest.mark.parametrize(
    "fragment", ["", "refund", "OK", "needle*", 'a "quoted', "NEAR(x y)", "it's"]
)
def test_free_text_is_an_indexed_substring_within_the_tenant_by_cursor(
    client: TestClient, keys: Keys, store: Store, seeded: SeededRuns, fragment: str
) -> None:
    """The trigram index answers what the substring scan answered: the tenant's runs only,
    composed with another filter, page after page; FTS5 syntax in the text is text."""
    with store.session(write=True) as s:  # a run whose text holds the syntax characters literally
        run = s.get(RunRecord, seeded.needle.session_runs[0])
        assert run is not None
        run.outputs = {"answer": "see needle* and NEAR(x y), it's here"}
        run.error = 'a "quoted remark (kept from a retried step)'
        run.status = "succeeded"
    login(client, keys.viewer)
    acme = _acme(store)
    expected = sorted(
        rid for rid, r in acme.items() if _holds(r, fragment) and r.status == "succeeded"
    )
    q = fragment.replace(" ", "+").replace('"', "%22").replace("*", "%2A").replace("'", "%27")
    walked = _walk(client, f"/explorer?q={q}&status=succeeded&limit=7")
    assert sorted(walked) == expected
    assert len(walked) == len(set(walked))
    if fragment not in ("", "OK", "refund"):
        assert expected == [run.id]


def test_each_row_links_to_adding_its_run_to_a_golden_set(
    client: TestClient, keys: Keys, seeded: SeededRuns
) -> None:
    login(client, keys.viewer)
    page = client.get("/explorer?limit=20").text
    links = re.findall(r'class="add-to-set" href="(/evals/add\?run=[^"]+)"', page)
    assert len(links) == len(_ids(page)) == 20
    r = client.get(links[0])
    assert r.status_code == 200
    assert "Add to golden set" in r.text
    assert _ids(page)[0] in r.text
