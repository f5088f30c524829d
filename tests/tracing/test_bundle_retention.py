"""Evidence bundles verify offline and expose tampering; traces expire, the audit log stays."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from opentelemetry import trace

from daytwo.exceptions import ConflictError, NotFoundError
from daytwo.store import Store, utcnow
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import TracingHandle, record_decision
from daytwo.tracing.audit import AuditLog
from daytwo.tracing.bundle import export_bundle, verify_bundle
from daytwo.tracing.chain import body_digest, canonical, checkpoint_message, link_hash, marks_of
from daytwo.tracing.retention import purge_traces
from daytwo.tracing.signing import AuditSigner


def _log(store: Store) -> AuditLog:
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=4)
    for i in range(10):
        run = "r1" if i % 3 == 0 else "r2"
        log.append("step", "agent", data={"i": i, "secret_of_other_run": run == "r2"}, run_id=run)
    return log


def test_bundle_verifies_offline_and_hides_other_runs(sqlite_store: Store, tmp_path: Path) -> None:
    log = _log(sqlite_store)
    info = export_bundle(log, "r1", tmp_path / "ev")
    assert (info.first_seq, info.run_records) == (1, 4)
    assert info.checkpoint_seq == 10  # made on demand: no checkpoint covered record 10
    pem = tmp_path / "ev" / "public_key.pem"
    report = verify_bundle(tmp_path / "ev", public_key=pem)
    assert report.ok, report.problem
    bundle = json.loads((tmp_path / "ev" / "bundle.json").read_text())
    others = [r for r in bundle["records"] if "body" not in r]
    assert len(others) == 6
    assert all(set(r) == {"seq", "prev_hash", "hash", "digest"} for r in others)

    # Tamper with a run record, with a digest, or with the checkpoint: all detected.
    def tampered(edit) -> bool:
        data = json.loads((tmp_path / "ev" / "bundle.json").read_text())
        edit(data)
        target = tmp_path / "t"
        target.mkdir(exist_ok=True)
        (target / "bundle.json").write_text(json.dumps(data))
        return not verify_bundle(target, public_key=pem).ok

    assert tampered(lambda d: d["records"][0]["body"]["data"].update(i=99))
    assert tampered(lambda d: d["records"][1].update(digest="0" * 64))
    assert tampered(lambda d: d["records"].pop(4))
    assert tampered(lambda d: d["checkpoint"].update(hash="1" * 64))
    assert tampered(lambda d: d["records"][-1].update(hash="2" * 64))
    # A checkpoint re-signed with the attacker's key fails against the pinned key.
    other = AuditSigner.generate()

    def resign(d: dict) -> None:
        d["records"][0]["body"]["data"]["i"] = 99
        prev = None
        for r in d["records"]:
            prev = r["prev_hash"] if prev is None else prev
            digest = body_digest(r["body"]) if "body" in r else r["digest"]
            r["prev_hash"], r["hash"] = prev, link_hash(r["seq"], prev, digest)
            prev = r["hash"]
        cp = d["checkpoint"]
        by_seq = {r["seq"]: r["hash"] for r in d["records"]}
        marks = marks_of(by_seq[s] for s in range(cp["prev_seq"] + 1, cp["seq"] + 1))
        cp.update(hash=prev, public_key=other.public_key_b64, key_id=other.key_id, marks=marks)
        msg = checkpoint_message(
            cp["seq"], cp["hash"], cp["prev_seq"], cp["at"], cp["key_id"], marks
        )
        cp["signature"] = other.sign(msg)
        d["public_key"] = other.public_key_b64
        manifest = d["manifest"]
        del manifest["signature"]
        manifest["records"][0][1] = body_digest(d["records"][0]["body"])
        manifest["key_id"] = other.key_id
        manifest["signature"] = other.sign(canonical(manifest))

    assert tampered(resign)
    target = tmp_path / "t"
    assert verify_bundle(target).ok  # self-consistent, so only a pinned key catches it

    with pytest.raises(ConflictError):
        export_bundle(log, "r1", tmp_path / "ev")
    with pytest.raises(NotFoundError):
        export_bundle(log, "nope", tmp_path / "ev2")
    assert not (tmp_path / "ev2").exists()


def test_traces_expire_and_audit_records_outlive_them(
    sqlite_tracing: TracingHandle, sqlite_store: Store
) -> None:
    tracer = trace.get_tracer("daytwo.test")
    with tracer.start_as_current_span("old", attributes={"daytwo.run.id": "r1"}):
        record_decision("tool_choice", "Picked x.", {})
    sqlite_tracing.flush()
    log = AuditLog(sqlite_store)
    log.append("run.end", "runtime", data={"run_id": "r1"})
    report = purge_traces(sqlite_store, 30, now=utcnow() + timedelta(days=29))
    assert (report.spans, report.decisions) == (0, 0)
    report = purge_traces(sqlite_store, 30, now=utcnow() + timedelta(days=31))
    assert (report.spans, report.decisions) == (1, 1)
    with sqlite_store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(SpanRow)) == 0
        assert s.scalar(sa.select(sa.func.count()).select_from(DecisionRow)) == 0
    assert [r.run_id for r in log.records()] == ["r1"]
    assert log.verify().ok
