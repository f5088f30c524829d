"""Tenant isolation, walked over the OpenAPI document.

Tenant ``acme`` (A) owns one object of every kind: an agent, a tool, a collection with
a document, an eval set with a run, an agent run, an API key, a trace, a model route.
Then every operation of the OpenAPI document is called by tenant ``globex``'s (B)
admin, operator and viewer, addressing A's objects by name and by id -- to list,
read, change, and reference them (from an agent spec, a tool binding, an eval run,
a gate, an export). Nothing of A's may appear in any answer, and A's objects must be
exactly as before.

Every operation must be classified in ``WALK``: a route added without a
classification fails this test, so new routes join the walk.

The MCP endpoint (``/mcp``, not in the OpenAPI document) is walked too: B's API keys
and a B agent key with pattern ``*`` list the tools and call A's tool by name and by
version; A's tool must answer exactly as a tool that exists nowhere.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.evals.cases import Case
from daytwo.evals.datasets import GoldenSets
from daytwo.evals.runner import CallableRunner
from daytwo.evals.runs import EvalRuns
from daytwo.server import KeyStore
from daytwo.server.dashboard import NAV
from daytwo.server.ownership import claim
from daytwo.store import Store

from .helpers import Keys

# Text only A's objects hold: none of it may reach B in any answer.
CONTENT = {
    "tool": "ACME-TOOL-DESC",
    "agent": "ACME-AGENT-PROMPT",
    "document": "ACME-DOC-SECRET",
    "eval case": "ACME-CASE-TEXT",
    "key": "acme viewer",
    "model route": "ACME-ROUTE-DESC",
}


@dataclass
class Seed:
    """A's objects (ids and names)."""

    ids: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.ids[key]


@dataclass(frozen=True)
class Op:
    """How to call one operation against A's objects.

    ``kinds``: the object kinds of A the call addresses (for the counts); ``path``
    fills path parameters; ``bodies``: request bodies to try (each one call);
    ``scoped``: B may get a 2xx (a list of B's own things), else B must be refused
    (4xx/501) -- either way nothing of A's may show.
    """

    kinds: tuple[str, ...]
    path: Callable[[Seed], dict[str, str]] = lambda a: {}
    bodies: Callable[[Seed], list[Any]] = lambda a: [None]
    scoped: bool = False


def _agent_spec(name: str, **step: Any) -> dict[str, Any]:
    return {"name": name, "steps": [{"id": "s", **step}]}


def _http_tool(name: str, secret: str | None = None) -> dict[str, Any]:
    backend: dict[str, Any] = {"type": "http", "url": "https://b.example.com/x"}
    if secret:
        backend["auth"] = {"type": "bearer", "secret": secret}
    return {"name": name, "capability": "acme.cap", "version": "9.0.0", "backend": backend}


ALL = ("agent", "tool", "collection", "document", "eval_set", "eval_run", "run", "key", "trace")

WALK: dict[str, Op] = {
    "GET /health": Op((), scoped=True),
    "GET /api/v1/me": Op(("key",), scoped=True),
    "GET /api/v1/keys": Op(("key",), scoped=True),
    "POST /api/v1/keys": Op(("key",), bodies=lambda a: [{"role": "viewer"}], scoped=True),
    "DELETE /api/v1/keys/{key_id}": Op(("key",), path=lambda a: {"key_id": a["key"]}),
    "POST /v1/traces": Op(
        ("trace", "run"),
        bodies=lambda a: [
            {
                "resourceSpans": [
                    {
                        "scopeSpans": [
                            {
                                "spans": [
                                    {
                                        "traceId": a["trace"],
                                        "spanId": "00f067aa0ba902b7",
                                        "name": "b-span",
                                        "startTimeUnixNano": "1700000000000000000",
                                        "endTimeUnixNano": "1700000001000000000",
                                    }
                                ]
                            }
                        ]
                    }
                ]
            }
        ],
        scoped=True,  # B may store its own spans; they must not open A's trace to B
    ),
    "POST /api/v1/traces/{trace_id}/scores": Op(
        ("trace",),
        path=lambda a: {"trace_id": a["trace"]},
        bodies=lambda a: [{"name": "thumbs", "value": 1}],
    ),
    "GET /api/v1/traces/{trace_id}/scores": Op(("trace",), path=lambda a: {"trace_id": a["trace"]}),
    "GET /api/v1/runs": Op(("run",), scoped=True),
    "POST /api/v1/runs": Op(
        ("agent",),
        bodies=lambda a: [{"agent": a["agent"]}, {"agent": a["agent2"], "version": "prod"}],
    ),
    "GET /api/v1/runs/{run_id}": Op(("run",), path=lambda a: {"run_id": a["run"]}),
    "POST /api/v1/runs/{run_id}/cancel": Op(("run",), path=lambda a: {"run_id": a["run"]}),
    "POST /api/v1/runs/{run_id}/resume": Op(("run",), path=lambda a: {"run_id": a["run"]}),
    "GET /api/v1/runs/{run_id}/explain": Op(("run",), path=lambda a: {"run_id": a["run"]}),
    "POST /api/v1/runs/{run_id}/audit/verify": Op(("run",), path=lambda a: {"run_id": a["run"]}),
    "GET /api/v1/runs/{run_id}/events": Op(("run",), path=lambda a: {"run_id": a["run"]}),
    "GET /api/v1/agents": Op(("agent",), scoped=True),
    "POST /api/v1/agents": Op(
        ("agent", "tool", "collection", "model_route"),
        bodies=lambda a: [
            # take A's agent name, reference A's tool, plan over it, retrieve A's collection
            {"spec": _agent_spec(a["agent"], kind="llm", prompt="hi")},
            {"spec": _agent_spec("b1", kind="tool", tool=a["tool"])},
            {"spec": _agent_spec("b2", kind="plan", goal="g", tools=[a["tool"]])},
            {"spec": _agent_spec("b3", kind="retrieve", collection=a["collection"], query="q")},
            # name A's model route as the agent's model, and as a step's
            {"spec": {**_agent_spec("b4", kind="llm", prompt="hi"), "model": a["model_route"]}},
            {"spec": _agent_spec("b5", kind="llm", prompt="hi", model=a["model_route"])},
        ],
    ),
    "GET /api/v1/agents/{name}": Op(("agent",), path=lambda a: {"name": a["agent"]}),
    "GET /api/v1/agents/{name}/versions/{version}": Op(
        ("agent",), path=lambda a: {"name": a["agent"], "version": "1"}
    ),
    "POST /api/v1/agents/{name}/promote": Op(
        ("agent",), path=lambda a: {"name": a["agent"]}, bodies=lambda a: [{"version": 1}]
    ),
    "POST /api/v1/agents/{name}/rollback": Op(
        ("agent",), path=lambda a: {"name": a["agent"]}, bodies=lambda a: [{"alias": "prod"}]
    ),
    "GET /api/v1/tools": Op(("tool",), scoped=True),
    "POST /api/v1/tools": Op(
        ("tool", "key"),
        bodies=lambda a: [
            {"definition": _http_tool(a["tool"])},  # a version of A's tool
            {"definition": _http_tool("b_tool", secret="acme/token")},  # A's credential
        ],
    ),
    "GET /api/v1/tools/health": Op(("tool",), scoped=True),
    "GET /api/v1/tools/drift-alerts": Op(("tool",), scoped=True),
    "GET /api/v1/tools/{name}": Op(("tool",), path=lambda a: {"name": a["tool"]}),
    "GET /api/v1/knowledge/collections": Op(("collection",), scoped=True),
    "POST /api/v1/knowledge/collections": Op(
        ("collection",),  # create A's collection again, with another analyzer
        bodies=lambda a: [{"name": a["collection"], "analyzer": "german"}],
    ),
    "PUT /api/v1/knowledge/collections/{collection}/documents": Op(
        ("collection", "document"),
        path=lambda a: {"collection": a["collection"]},
        bodies=lambda a: [{"doc_id": a["document"], "text": "overwritten by B"}],
    ),
    "DELETE /api/v1/knowledge/collections/{collection}/documents/{doc_id}": Op(
        ("collection", "document"),
        path=lambda a: {"collection": a["collection"], "doc_id": a["document"]},
    ),
    "POST /api/v1/knowledge/collections/{collection}/bulk": Op(
        ("collection", "document"),
        path=lambda a: {"collection": a["collection"]},
        # one NDJSON line each: overwrite A's document, erase it
        bodies=lambda a: [
            {"doc_id": a["document"], "text": "overwritten by B"},
            {"op": "delete", "doc_id": a["document"]},
        ],
    ),
    "POST /api/v1/knowledge/collections/{collection}/search": Op(
        ("collection", "document"),
        path=lambda a: {"collection": a["collection"]},
        # plain, and reranked by a named reranker (the name is checked after visibility)
        bodies=lambda a: [
            {"query": "ACME"},
            {"query": "ACME", "mode": "bm25", "rerank": "lex", "rerank_depth": 5},
        ],
    ),
    "GET /api/v1/knowledge/collections/{collection}/health": Op(
        ("collection",), path=lambda a: {"collection": a["collection"]}
    ),
    "POST /api/v1/knowledge/collections/{collection}/migration": Op(
        ("collection",),
        path=lambda a: {"collection": a["collection"]},
        bodies=lambda a: [{"embedder": "hashing-384"}],
    ),
    "POST /api/v1/knowledge/collections/{collection}/migration/cutover": Op(
        ("collection",), path=lambda a: {"collection": a["collection"]}
    ),
    "POST /api/v1/knowledge/collections/{collection}/migration/rollback": Op(
        ("collection",), path=lambda a: {"collection": a["collection"]}
    ),
    "GET /api/v1/evals/sets": Op(("eval_set",), scoped=True),
    "GET /api/v1/evals/runs": Op(("eval_run",), scoped=True),
    "POST /api/v1/evals/runs": Op(
        ("eval_set", "agent"),
        bodies=lambda a: [{"agent": a["agent"], "set": a["eval_set"]}],
    ),
    "GET /api/v1/evals/runs/{run_id}": Op(("eval_run",), path=lambda a: {"run_id": a["eval_run"]}),
    "GET /api/v1/evals/runs/{run_id}/report": Op(
        ("eval_run",), path=lambda a: {"run_id": a["eval_run"]}
    ),
    "POST /api/v1/evals/gate": Op(
        ("eval_run",),
        bodies=lambda a: [
            {"candidate": a["eval_run"], "baseline": a["eval_run"], "metric": "exact_match"}
        ],
    ),
    # Golden-set curation (routes/curation.py) and judges (routes/judges.py).
    "POST /api/v1/evals/sets": Op(("eval_set",), bodies=lambda a: [{"name": a["eval_set"]}]),
    "GET /api/v1/evals/sets/{name}/versions/{version}/cases": Op(
        ("eval_set",), path=lambda a: {"name": a["eval_set"], "version": "1"}
    ),
    "GET /api/v1/evals/sets/{name}/diff": Op(("eval_set",), path=lambda a: {"name": a["eval_set"]}),
    "POST /api/v1/evals/sets/{name}/promote": Op(
        ("eval_set", "eval_run", "run", "trace"),
        path=lambda a: {"name": a["eval_set"]},
        bodies=lambda a: [
            {"run": a["eval_result"], "force": True},
            {"run": a["run"], "force": True},
            {"run": f"otlp-{a['trace']}", "force": True},
        ],
    ),
    "GET /api/v1/evals/sets/{name}/proposed": Op(
        ("eval_set",), path=lambda a: {"name": a["eval_set"]}
    ),
    "POST /api/v1/evals/sets/{name}/proposed/{case_id}": Op(
        ("eval_set",),
        path=lambda a: {"name": a["eval_set"], "case_id": a["proposed"]},
        bodies=lambda a: [
            {"action": "accept"},
            {"action": "reject", "reason": "B"},
            {"action": "edit", "reason": "B", "case": {"input": "B"}},
        ],
    ),
    "GET /api/v1/evals/judges": Op(("judge",), scoped=True),
    "GET /api/v1/evals/judges/{name}/{version}/verdicts": Op(
        ("judge", "eval_run"), path=lambda a: {"name": a["judge"], "version": "1"}
    ),
    "GET /api/v1/evals/judges/{name}/{version}/next": Op(
        ("judge",), path=lambda a: {"name": a["judge"], "version": "1"}
    ),
    "POST /api/v1/evals/judges/{name}/{version}/annotations": Op(
        ("judge",),
        path=lambda a: {"name": a["judge"], "version": "1"},
        bodies=lambda a: [
            {"judgement_id": a["judgement"], "label": "candidate", "shown_first": "candidate"}
        ],
    ),
    "POST /api/v1/evals/judges/{name}/{version}/runs": Op(
        ("eval_run", "model_route"),
        path=lambda a: {"name": "pairwise", "version": "1"},
        bodies=lambda a: [
            {"run": a["eval_run"], "baseline": a["eval_run"], "model": a["model_route"]},
            {"run": a["eval_run"], "baseline": a["eval_run"], "model": "local/smollm2-135m"},
        ],
    ),
    "GET /api/v1/evals/judges/{name}/{version}/agreement": Op(
        ("judge",), path=lambda a: {"name": a["judge"], "version": "1"}
    ),
    "GET /api/v1/costs": Op(("run",), scoped=True),
    "GET /api/v1/audit/verify": Op(ALL, scoped=True),
    "GET /api/v1/audit/export": Op(ALL, scoped=True),
    "POST /v1/chat/completions": Op(
        ("model_route",),
        bodies=lambda a: [
            {"model": a["model_route"], "messages": [{"role": "user", "content": "x"}]}
        ],
    ),
    "POST /v1/embeddings": Op(
        ("model_route",), bodies=lambda a: [{"model": a["model_route"], "input": "x"}]
    ),
    "GET /v1/models": Op(("model_route",), scoped=True),
    # Model routes are named per tenant: B may make its own route of the same name.
    "GET /api/v1/models/routes": Op(("model_route",), scoped=True),
    "GET /api/v1/models/routes/{name}": Op(
        ("model_route",), path=lambda a: {"name": a["model_route"]}
    ),
    "PUT /api/v1/models/routes/{name}": Op(
        ("model_route",),
        path=lambda a: {"name": a["model_route"]},
        bodies=lambda a: [{"targets": ["local/smollm2-135m"], "description": "B's own"}],
        scoped=True,
    ),
    "DELETE /api/v1/models/routes/{name}": Op(
        ("model_route",), path=lambda a: {"name": a["model_route"]}, scoped=True
    ),
    "GET /api/v1/models/budgets": Op(("key", "model_route"), scoped=True),
    "PUT /api/v1/models/budgets/tenant": Op(
        ("key",), bodies=lambda a: [{"usd_per_day": 1.0}], scoped=True
    ),
    "DELETE /api/v1/models/budgets/tenant": Op(("key",), scoped=True),
    "PUT /api/v1/models/budgets/keys/{key_id}": Op(
        ("key",), path=lambda a: {"key_id": a["key"]}, bodies=lambda a: [{"usd_per_day": 0.0}]
    ),
    "DELETE /api/v1/models/budgets/keys/{key_id}": Op(
        ("key",), path=lambda a: {"key_id": a["key"]}
    ),
    "POST /v1/messages": Op(
        ("model_route",),
        bodies=lambda a: [
            {
                "model": a["model_route"],
                "max_tokens": 8,
                "messages": [{"role": "user", "content": "x"}],
            }
        ],
    ),
}


def _operations(client: TestClient) -> set[str]:
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    return {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}


def _seed(c: TestClient, store: Store, keys: Keys) -> Seed:
    a = Seed()
    admin, operator = Keys.header(keys.admin), Keys.header(keys.operator)
    # Store-level objects first (no request of this test writes at the same time).
    GoldenSets(store).create("acme-set")
    GoldenSets(store).add(
        "acme-set", [Case(key="c1", input=CONTENT["eval case"], expected_output="4")]
    )
    claim(store, "eval_set", "acme-set", "acme", "eval set", exists=False)
    run = EvalRuns(store).run(
        CallableRunner(lambda case: "4", name="calc", version="1"),
        "acme-set",
        config={"started_by": "acme/key:0123456789ab"},
    )
    a.ids["eval_set"], a.ids["eval_run"] = "acme-set", run.id
    a.ids["eval_result"] = EvalRuns(store).results(run.id)[0].id
    a.ids["proposed"] = (
        GoldenSets(store)
        .propose("acme-set", [Case(key="p1", input=f"{CONTENT['eval case']} 2")], {"source": "x"})[
            0
        ]
        .id
    )
    a.ids["judge"], a.ids["judgement"] = "acme_judge", _judged(store, run.id)
    tool = _http_tool("acme_tool")
    tool["description"] = CONTENT["tool"]
    r = c.post("/api/v1/tools", json={"definition": tool}, headers=admin)
    assert r.status_code == 201, r.text
    a.ids["tool"] = "acme_tool"
    spec = _agent_spec("acme_agent", kind="llm", prompt=CONTENT["agent"])
    r = c.post("/api/v1/agents", json={"spec": spec}, headers=admin)
    assert r.status_code == 201, r.text
    r = c.post("/api/v1/agents/acme_agent/promote", json={"version": 1}, headers=admin)
    assert r.status_code == 200, r.text
    a.ids["agent"], a.ids["agent2"] = "support", "acme_agent"
    r = c.put(
        "/api/v1/knowledge/collections/acme-kb/documents",
        json={"doc_id": "acme-doc-1", "text": f"{CONTENT['document']} refunds over 500"},
        headers=operator,
    )
    assert r.status_code in {200, 201}, r.text
    a.ids["collection"], a.ids["document"] = "acme-kb", "acme-doc-1"
    r = c.post(
        "/api/v1/runs",
        json={"agent": "support", "inputs": {"question": "q"}, "session": "acme-session-1"},
        headers=operator,
    )
    assert r.status_code == 202, r.text
    a.ids["run"], a.ids["session"] = r.json()["id"], "acme-session-1"
    deadline = time.monotonic() + 60
    while c.get(f"/api/v1/runs/{a['run']}", headers=operator).json()["status"] not in {
        "succeeded",
        "failed",
    }:
        assert time.monotonic() < deadline, "A's run did not finish"
        time.sleep(0.1)
    viewer = [k for k in c.get("/api/v1/keys", headers=admin).json() if k["role"] == "viewer"]
    a.ids["key"] = viewer[0]["id"]
    a.ids["trace"] = _trace_of(store, a["run"])
    r = c.put(
        "/api/v1/models/routes/acme-route",
        json={"targets": ["local/smollm2-135m"], "description": CONTENT["model route"]},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    r = c.put(f"/api/v1/models/budgets/keys/{a['key']}", json={"usd_per_day": 5.0}, headers=admin)
    assert r.status_code == 200, r.text
    a.ids["model_route"] = "acme-route"
    return a


def _judged(store: Store, run_id: str) -> str:
    """A's own pairwise judge over its eval run (both orders), through a scripted model."""
    from daytwo.evals.judges import PAIRWISE, JudgeSpec
    from daytwo.evals.judging import judge_pairwise
    from daytwo.models.openai_compat import OpenAICompatProvider
    from daytwo.store.tables.evals import EvalJudgement
    from daytwo.testing import ScriptedModelServer

    spec = JudgeSpec("acme_judge", "1", "pairwise", PAIRWISE.system, "ACME " + PAIRWISE.template)
    with ScriptedModelServer(default='{"winner": "A"}') as server:
        model = OpenAICompatProvider(server.base_url, model="scripted")
        try:
            judge_pairwise(EvalRuns(store), model, spec, run_id, run_id)
        finally:
            model.close()
    with store.session() as s:
        return str(s.scalar(sa.select(EvalJudgement.id).where(EvalJudgement.run_id == run_id)))


def _trace_of(store: Store, run_id: str) -> str:
    from daytwo.store.tables.tracing import SpanRow
    from daytwo.tracing import current_handle

    handle = current_handle()
    if handle is not None:
        handle.flush(timeout_s=5.0)
    with store.session() as s:
        found = s.scalar(sa.select(SpanRow.trace_id).where(SpanRow.run_id == run_id).limit(1))
    assert found, "A's run left no spans"
    return str(found)


def _fingerprint(c: TestClient, keys: Keys, a: Seed) -> str:
    """A's objects as A sees them (volatile figures left out)."""
    h = Keys.header(keys.admin)
    view: dict[str, Any] = {
        "tools": c.get("/api/v1/tools", headers=h).json(),
        "agents": c.get("/api/v1/agents", headers=h).json(),
        "agent": c.get("/api/v1/agents/acme_agent/versions/prod", headers=h).json(),
        "collections": [
            {k: v for k, v in col.items() if k in {"name", "documents", "chunks"}}
            for col in c.get("/api/v1/knowledge/collections", headers=h).json()
        ],
        "search": c.post(
            "/api/v1/knowledge/collections/acme-kb/search",
            json={"query": "refunds"},
            headers=h,
        ).json(),
        "sets": c.get("/api/v1/evals/sets", headers=h).json(),
        "eval_runs": c.get("/api/v1/evals/runs", headers=h).json(),
        "runs": [(r["id"], r["status"]) for r in c.get("/api/v1/runs", headers=h).json()],
        "keys": [(k["id"], k["revoked_at"]) for k in c.get("/api/v1/keys", headers=h).json()],
        "scores": c.get(f"/api/v1/traces/{a['trace']}/scores", headers=h).json(),
        "proposed": c.get(f"/api/v1/evals/sets/{a['eval_set']}/proposed", headers=h).json(),
        "verdicts": c.get(f"/api/v1/evals/judges/{a['judge']}/1/verdicts", headers=h).json(),
        "model_routes": c.get("/api/v1/models/routes", headers=h).json(),
        "budgets": [
            {k: v for k, v in b.items() if "spent" not in k and "used" not in k}
            for b in c.get("/api/v1/models/budgets", headers=h).json()
        ]
        if isinstance(c.get("/api/v1/models/budgets", headers=h).json(), list)
        else c.get("/api/v1/models/budgets", headers=h).json(),
    }
    return json.dumps(view, sort_keys=True, default=str)


def _leaks(text: str, request_text: str, a: Seed) -> list[str]:
    """A's content and names in an answer (a name B itself sent is not a leak)."""
    found = [marker for marker in CONTENT.values() if marker in text]
    for name in (*a.ids.values(), "acme"):
        if name in text and name not in request_text and name != "support":
            found.append(name)
    return found


def _dashboard_login(c: TestClient, key: str) -> None:
    """A dashboard session for ``key`` (the login form, as a browser posts it)."""
    form = c.get("/login").text
    token = re.search(r'name="csrf_token" value="([0-9a-f]*)"', form)
    data = {"key": key, "next": "/", "csrf_token": token.group(1) if token else ""}
    assert c.post("/login", data=data, follow_redirects=False).status_code == 303


def test_walk_every_operation_as_another_tenant(
    run_client: TestClient, keys: Keys, store: Store
) -> None:
    c = run_client
    ops = _operations(c)
    unclassified = sorted(ops - set(WALK))
    assert not unclassified, f"classify these routes in WALK (tests/server): {unclassified}"
    stale = sorted(set(WALK) - ops)
    assert not stale, f"these WALK entries are no longer routes: {stale}"

    a = _seed(c, store, keys)
    before = _fingerprint(c, keys, a)
    ks = KeyStore(store)
    roles = {
        "admin": keys.other_admin,
        "operator": ks.create(role="operator", tenant="globex", name="globex operator")[1],
        "viewer": keys.other_viewer,
    }
    tried = 0
    kinds: set[str] = set()
    problems: list[str] = []
    # B first tries to plant spans in A's trace, then every other operation.
    order = sorted(WALK, key=lambda op_id: (op_id != "POST /v1/traces", op_id))
    for op_id in order:
        op = WALK[op_id]
        method, template = op_id.split(" ", 1)
        path = template.format(**op.path(a))
        kinds.update(op.kinds)
        for role, key in roles.items():
            for body in op.bodies(a):
                r = c.request(method, path, json=body, headers=Keys.header(key))
                tried += len(op.kinds) or 1
                request_text = path + json.dumps(body)
                leaked = _leaks(r.text, request_text, a)
                if leaked:
                    problems.append(f"{role} {op_id} {r.status_code}: leaks {leaked}")
                if not op.scoped and r.status_code < 400:
                    problems.append(f"{role} {op_id} {body}: {r.status_code} {r.text[:200]}")
                if r.status_code >= 500 and r.status_code != 501:
                    problems.append(f"{role} {op_id}: server error {r.status_code}")
    # The dashboard's pages (not in the OpenAPI document) as B, logged in with a
    # session like a browser, with their query parameters and table exports.
    pages = [href for href, _ in NAV] + [
        f"/runs/{a['run']}",
        f"/runs?agent={a['agent2']}",
        "/?window=30d",
        "/?window=30d&export=agent-health&format=json",
        "/?window=30d&export=alerts&format=csv",
        "/?window=30d&export=eval-health&format=json",
        f"/evals/runs/{a['eval_run']}",
        f"/evals/runs/{a['eval_run']}?metric=exact_match&export=cases&format=json",
        f"/runs?agent={a['agent2']}&export=runs&format=csv",
        f"/models/canary/{a['eval_run']}",
        # the trace explorer: filters, its exports, a session, a comparison
        "/explorer?q=q",
        f"/explorer?session={a['session']}&agent=support",
        "/explorer?export=explorer&format=json",
        "/explorer/export?format=json",
        "/explorer/export?format=csv&status=succeeded",
        f"/explorer/sessions/{a['session']}",
        f"/explorer/compare?run={a['run']}&run={a['run']}",
        f"/evals/sets/{a['eval_set']}",
        f"/evals/sets/{a['eval_set']}?old=1&new=1",
        f"/evals/add?run={a['run']}",
        f"/evals/add?run={a['eval_result']}",
        f"/evals/add?run=otlp-{a['trace']}",
        f"/traces/{a['trace']}",
        f"/evals/judges/{a['judge']}/1",
    ]
    for role, key in roles.items():
        browser = TestClient(c.app, raise_server_exceptions=False)
        _dashboard_login(browser, key)
        for href in pages:
            r = browser.get(href, follow_redirects=False)
            tried += 1
            if r.status_code in (302, 303) or r.status_code >= 500:
                problems.append(f"{role} page {href}: {r.status_code} (not served to B)")
            leaked = _leaks(r.text, href, a)
            if leaked:
                problems.append(f"{role} page {href} {r.status_code}: leaks {leaked}")
    # Control: A's own viewer is served those pages (not a 404 or a redirect), so the
    # walk above reached real pages of A's objects.
    own_browser = TestClient(c.app, raise_server_exceptions=False)
    _dashboard_login(own_browser, keys.viewer)
    for href in pages:
        if href.startswith("/models/canary/"):
            continue  # no canary check exists: a 404 for A as well
        r = own_browser.get(href, follow_redirects=False)
        if r.status_code != 200:
            problems.append(f"control: A's viewer got {r.status_code} for {href}")
    # The MCP endpoint as B: its API keys and an agent key of B allowed every tool.
    gateway = c.app.state.gateway  # type: ignore[attr-defined]
    mcp_keys = {**roles, "agent": gateway.create_agent("globex-any", ["*"], tenant="globex")}
    mcp_probes = _walk_mcp(c, a, mcp_keys, problems)
    tried += mcp_probes
    assert not problems, "\n".join(problems)
    assert _fingerprint(c, keys, a) == before, "tenant B changed A's objects"
    # Counted: operations x object kinds addressed x roles (each body once).
    print(
        f"isolation walk: {len(WALK)} operations + {len(pages)} pages + {mcp_probes} MCP "
        f"probes, {len(kinds)} object kinds, {len(roles)} roles, {tried} probes, leaks 0"
    )
    assert tried >= 3 * len(WALK)

    # Control: the same probes of reads by A's own viewer do find A's objects, so the
    # detector above can fail.
    own = Keys.header(keys.viewer)
    seen = 0
    for op_id in sorted(WALK):
        method, template = op_id.split(" ", 1)
        if method != "GET" or not WALK[op_id].path(a):
            continue
        r = c.get(template.format(**WALK[op_id].path(a)), headers=own)
        seen += r.status_code == 200
    assert seen >= 8, seen
    hits = c.post(
        f"/api/v1/knowledge/collections/{a['collection']}/search",
        json={"query": "ACME"},
        headers=own,
    )
    assert _leaks(hits.text, "", a)
    # ... and A's own viewer, logged in, finds A's run on the explorer's pages.
    own_browser = TestClient(c.app, raise_server_exceptions=False)
    _dashboard_login(own_browser, keys.viewer)
    for href in (f"/explorer/sessions/{a['session']}", "/explorer/export?format=json"):
        assert a["run"] in own_browser.get(href).text, href
    listed = _mcp(c, keys.viewer, "tools/list", {})
    assert _leaks(json.dumps(listed), "", a), listed  # A's own key sees its tool over MCP


# Over MCP (JSON-RPC on /mcp/; the transport admits loopback Host headers only).
MCP_URL = "http://127.0.0.1:8765/mcp/"


def _mcp(c: TestClient, key: str, method: str, params: dict[str, Any]) -> Any:
    r = c.post(
        MCP_URL,
        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={**Keys.header(key), "Accept": "application/json, text/event-stream"},
    )
    assert r.status_code == 200, r.text
    return r.json()


def _walk_mcp(c: TestClient, a: Seed, keys: dict[str, str], problems: list[str]) -> int:
    """B lists tools and calls A's tool; return the probes made."""
    tried = 0
    for who, key in keys.items():
        listed = _mcp(c, key, "tools/list", {})
        tried += 1
        leaked = _leaks(json.dumps(listed), "", a)
        if leaked or "result" not in listed:
            problems.append(f"{who} MCP tools/list: {leaked or listed}")
        for ref in (a["tool"], f"{a['tool']}@9", f"{a['tool']}@1"):
            params = {"name": ref, "arguments": {}}
            hidden = _mcp(c, key, "tools/call", params)
            missing = _mcp(c, key, "tools/call", {**params, "name": ref.replace(a["tool"], "nx")})
            tried += 1
            text = json.dumps(hidden)
            leaked = _leaks(text, json.dumps(params), a)
            if leaked:
                problems.append(f"{who} MCP tools/call {ref}: leaks {leaked}")
            if text != json.dumps(missing).replace("'nx'", repr(a["tool"])):
                problems.append(f"{who} MCP tools/call {ref} differs from a missing tool: {text}")
    return tried
