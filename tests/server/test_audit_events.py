"""Admin and auth events are audited with the real principal (key id, tenant, role)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.server import create_app
from daytwo.server.ownership import claim
from daytwo.server.services import audit_log
from daytwo.settings import Settings
from daytwo.store import Store

from .helpers import Keys


def _records(c: TestClient, kind: str) -> list[Any]:
    return [r for r in c.app.state.audit.records() if r.kind == kind]  # type: ignore[attr-defined]


def _key_id(key: str) -> str:
    return key.split("_")[1]


def test_key_events_and_first_use_per_day(client: TestClient, keys: Keys) -> None:
    c = client
    admin = Keys.header(keys.admin)
    r = c.post("/api/v1/keys", json={"role": "viewer", "name": "temp"}, headers=admin)
    assert r.status_code == 201
    new_id = r.json()["id"]
    assert c.delete(f"/api/v1/keys/{new_id}", headers=admin).status_code == 200
    (created,) = _records(c, "key.create")
    (revoked,) = _records(c, "key.revoke")
    for rec in (created, revoked):
        assert rec.subject == new_id
        assert rec.actor == f"acme/key:{_key_id(keys.admin)[:12]}"
        assert rec.data["key_id"] == _key_id(keys.admin)
        assert (rec.data["tenant"], rec.data["role"]) == ("acme", "admin")
    assert r.json()["key"] not in str(created.data)
    for _ in range(3):
        c.get("/api/v1/me", headers=Keys.header(keys.viewer))
    uses = [u for u in _records(c, "key.use") if u.subject == _key_id(keys.viewer)]
    assert len(uses) == 1  # the first use of the day only
    assert uses[0].data["role"] == "viewer"


def test_login_success_and_failure(client: TestClient, keys: Keys) -> None:
    c = client
    wrong = f"dt_{_key_id(keys.viewer)}_{'x' * 43}"
    r = c.post("/login", data={"key": wrong}, follow_redirects=False)
    assert r.status_code == 401
    r = c.post("/login", data={"key": keys.viewer}, follow_redirects=False)
    assert r.status_code == 303
    (failure,) = _records(c, "login.failure")
    assert failure.subject == _key_id(keys.viewer)
    assert failure.actor == "anonymous"
    assert "x" * 43 not in str(failure.data)
    (success,) = _records(c, "login.success")
    assert success.data["key_id"] == _key_id(keys.viewer)
    assert success.data["tenant"] == "acme"


def test_agent_register_promote_rollback(client: TestClient, keys: Keys) -> None:
    c = client
    admin = Keys.header(keys.admin)
    for prompt in ("one", "two"):
        spec = {"name": "helper", "steps": [{"id": "s", "kind": "llm", "prompt": prompt}]}
        assert c.post("/api/v1/agents", json={"spec": spec}, headers=admin).status_code == 201
    c.post("/api/v1/agents/helper/promote", json={"version": 1}, headers=admin)
    c.post("/api/v1/agents/helper/promote", json={"version": 2}, headers=admin)
    assert c.post("/api/v1/agents/helper/rollback", headers=admin).status_code == 200
    assert [r.data["version"] for r in _records(c, "agent.register")] == [1, 2]
    assert [r.data["to_version"] for r in _records(c, "agent.promote")] == [1, 2]
    (rollback,) = _records(c, "agent.rollback")
    assert (rollback.data["from_version"], rollback.data["to_version"]) == (2, 1)
    assert rollback.data["key_id"] == _key_id(keys.admin)


SLOW_SPEC = {
    "name": "slow",
    "steps": [
        {"id": "a", "kind": "tool", "tool": "slow", "arguments": {"n": 1}},
        {"id": "b", "kind": "tool", "tool": "slow", "arguments": {"n": 2}, "after": ["a"]},
        {"id": "c", "kind": "tool", "tool": "slow", "arguments": {"n": 3}, "after": ["b"]},
    ],
}


@pytest.fixture
def slow_client(settings: Settings, store: Store) -> Iterator[tuple[TestClient, list[float]]]:
    """A runtime whose only tool sleeps 1 s and records when each call starts."""
    from daytwo.runtime import PythonTools, Runtime, Services, load_spec

    started: list[float] = []
    lock = threading.Lock()

    def slow(n: int, idempotency_key: str) -> dict[str, int]:
        with lock:
            started.append(time.time())
        time.sleep(1.0)
        return {"n": n}

    tools = PythonTools()
    tools.add("slow", slow)
    services = Services(tools=tools, audit=audit_log(settings, store))
    schema = "dbos" if store.is_sqlite else f"dbos_{uuid.uuid4().hex[:10]}"
    rt = Runtime(store, services, data_dir=settings.data_dir, dbos_schema=schema)
    rt.registry.register(load_spec(SLOW_SPEC))
    claim(store, "agent", "slow", "acme", "agent", exists=False)
    app = create_app(settings, store, runtime=rt)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c, started
    finally:
        if not store.is_sqlite:
            with store.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_cancel_names_the_key_and_no_step_starts_after_it(
    slow_client: tuple[TestClient, list[float]], keys: Keys
) -> None:
    c, started = slow_client
    op = Keys.header(keys.operator)
    r = c.post("/api/v1/runs", json={"agent": "slow"}, headers=op)
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while not started:
        assert time.monotonic() < deadline, "the first step never started"
        time.sleep(0.02)
    r = c.post(f"/api/v1/runs/{run_id}/cancel", headers=op)
    assert r.status_code == 200, r.text
    cancelled_at = time.time()  # the run.cancel record is written before the answer
    time.sleep(3.0)  # two more steps would have started by now
    assert [t for t in started if t > cancelled_at] == []
    assert len(started) == 1
    (record,) = [rec for rec in _records(c, "run.cancel") if rec.subject == run_id]
    assert record.actor == f"acme/key:{_key_id(keys.operator)[:12]}"
    assert record.data["role"] == "operator"
    assert c.get(f"/api/v1/runs/{run_id}", headers=op).json()["status"] == "cancelled"


def test_document_write_and_erase(client: TestClient, keys: Keys) -> None:
    c = client
    op = Keys.header(keys.operator)
    url = "/api/v1/knowledge/collections/handbook/documents"
    r = c.put(url, json={"doc_id": "user-42-notes", "text": "hello"}, headers=op)
    assert r.status_code == 200, r.text
    assert c.delete(f"{url}/user-42-notes", headers=op).status_code == 200
    (write,) = _records(c, "doc.write")
    (erase,) = _records(c, "doc.erase")
    assert write.subject == erase.subject == "handbook"
    assert erase.data["key_id"] == _key_id(keys.operator)
    assert "user-42" not in str(write.data) + str(erase.data)  # ids stay out of the chain
