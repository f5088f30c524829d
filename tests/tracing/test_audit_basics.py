"""Audit log: appends chain, verify passes, caller transactions, bad input."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from daytwo.exceptions import InputError
from daytwo.store import Store
from daytwo.store.tables.core import InstanceInfo
from daytwo.store.tables.tracing import AuditRecordRow
from daytwo.tracing.audit import AuditLog
from daytwo.tracing.chain import GENESIS, body_digest, link_hash
from daytwo.tracing.signing import AuditSigner


def test_appends_form_a_chain_that_verifies(store: Store) -> None:
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=3)
    first = log.append("run.start", "alice", subject="run-1", data={"run_id": "r1", "n": 1})
    second = log.append("tool.call", "agent:a", data={"tool": "search", "score": 0.25})
    assert first.seq == 1
    assert second.seq == 2
    assert first.prev_hash == GENESIS
    assert second.prev_hash == first.hash
    assert first.run_id == "r1"
    assert second.run_id is None
    body = {
        "id": first.id,
        "at": first.to_dict()["at"],
        "kind": "run.start",
        "actor": "alice",
        "subject": "run-1",
        "run_id": "r1",
        "data": {"run_id": "r1", "n": 1},
    }
    assert first.hash == link_hash(1, GENESIS, body_digest(body))
    for i in range(5):
        log.append("step", "agent:a", data={"i": i})
    report = log.verify()
    assert report.ok, report.problem
    assert report.records == 7
    assert report.checkpoints == 2
    assert report.sealed_seq == 6
    assert [r.seq for r in log.records(run_id="r1")] == [1]


def test_append_joins_the_callers_transaction(store: Store) -> None:
    log = AuditLog(store)
    with pytest.raises(RuntimeError), store.session() as s:
        s.add(InstanceInfo(key="k", value="v"))
        log.append("admin.action", "root", data={"what": "set k"}, session=s)
        raise RuntimeError("caller failed")
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(AuditRecordRow)) == 0
        assert s.get(InstanceInfo, "k") is None
    with store.session() as s:
        s.add(InstanceInfo(key="k", value="v"))
        rec = log.append("admin.action", "root", data={"what": "set k"}, session=s)
    assert rec.seq == 1
    assert log.verify().ok


@pytest.mark.parametrize(
    "data",
    [{"x": float("nan")}, {"x": 2**60}, {"x": object()}],
)
def test_data_json_cannot_carry_is_refused_before_writing(store: Store, data: dict) -> None:
    log = AuditLog(store)
    with pytest.raises(InputError, match="canonicalised"):
        log.append("k", "a", data=data)
    with pytest.raises(InputError, match="kind and an actor"):
        log.append("", "a")
    assert log.records() == []
    assert log.append("k", "a").seq == 1


def test_long_fields_fit_the_columns(store: Store) -> None:
    log = AuditLog(store)
    rec = log.append("k", "a", subject="s" * 1000)
    assert rec.subject == "s" * 255
    with pytest.raises(InputError, match="longer than 64"):
        log.append("k", "a", run_id="r" * 65)
    assert log.verify().ok
