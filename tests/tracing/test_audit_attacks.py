"""Every attack on the audit log reported from outside (issue 22), on SQLite and PostgreSQL.

The attacker has full write access to the database but not the signing key: they
edit records and recompute every later hash, delete checkpoints, append forged
records, replace the key file and re-sign, or edit an exported evidence bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.store import Store, new_id, utcnow
from daytwo.store.tables.tracing import AuditCheckpointRow, AuditHeadRow, AuditRecordRow
from daytwo.tracing.anchor import read_anchors
from daytwo.tracing.audit import AuditLog, record_body
from daytwo.tracing.bundle import export_bundle, verify_bundle
from daytwo.tracing.chain import body_digest, iso, link_hash
from daytwo.tracing.signing import AuditSigner


def _fill(log: AuditLog, n: int, *, run: str = "r1") -> None:
    for i in range(n):
        log.append("step", "agent:support", data={"i": i, "note": f"n{i}"}, run_id=run)


def _rehash_from(store: Store, seq: int, edit: dict[str, object]) -> None:
    """Edit record ``seq``'s data and recompute every later hash and the head (no key needed)."""
    log = AuditLog(store)
    with store.session() as s:
        records = [r for r in log.chain_records(s, since_seq=seq - 1)]
    with store.session(write=True) as s:
        prev = records[0].prev_hash
        for rec in records:
            assert rec.body is not None
            body = dict(rec.body)
            if rec.seq == seq:
                body["data"] = {**body["data"], **edit}
                s.execute(
                    sa.update(AuditRecordRow)
                    .where(AuditRecordRow.seq == seq)
                    .values(data=body["data"])
                )
            new_hash = link_hash(rec.seq, prev, body_digest(body))
            s.execute(
                sa.update(AuditRecordRow)
                .where(AuditRecordRow.seq == rec.seq)
                .values(prev_hash=prev, hash=new_hash)
            )
            prev = new_hash
        s.execute(sa.update(AuditHeadRow).where(AuditHeadRow.id == 1).values(hash=prev))


def _append_forged(store: Store, n: int) -> None:
    """Append ``n`` well-linked records straight into the tables, as the runtime would."""
    with store.session(write=True) as s:
        head = s.get(AuditHeadRow, 1)
        assert head is not None
        seq, prev = head.seq, head.hash
        for i in range(n):
            seq += 1
            at = utcnow()
            rid = new_id()
            data = {"forged": i}
            body = record_body(rid, iso(at), "step", "agent:support", None, "r1", data)
            digest = body_digest(body)
            h = link_hash(seq, prev, digest)
            s.add(
                AuditRecordRow(
                    seq=seq,
                    id=rid,
                    at=at,
                    kind="step",
                    actor="agent:support",
                    subject=None,
                    run_id="r1",
                    data=data,
                    prev_hash=prev,
                    hash=h,
                )
            )
            prev = h
        head.seq, head.hash = seq, prev


def _delete_checkpoints(store: Store, *, from_seq: int = 0) -> None:
    with store.session(write=True) as s:
        s.execute(sa.delete(AuditCheckpointRow).where(AuditCheckpointRow.seq >= from_seq))


def _resign(store: Store, signer: AuditSigner, every: int) -> None:
    """Replace every checkpoint by one the attacker's own key signs over the current chain."""
    _delete_checkpoints(store)
    with store.session() as s:
        last = s.scalar(sa.select(sa.func.max(AuditRecordRow.seq)))
        hashes = dict(s.execute(sa.select(AuditRecordRow.seq, AuditRecordRow.hash)).all())
    forger = AuditLog(store, signer=signer, checkpoint_every=every)
    with store.session(write=True) as s:
        for seq in range(every, int(last) + 1, every):
            forger._write_checkpoint(s, seq, hashes[seq])


def test_forged_and_rehashed_record_10_is_named_10(store: Store) -> None:
    """The issue's case: a rewrite of record 10 under checkpoint 100 was reported as 100."""
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=100)
    _fill(log, 150)
    assert log.verify().ok
    _rehash_from(store, 10, {"note": "forged"})
    report = log.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == 10, report.problem
    assert "rewritten" in report.problem.reason


def test_rehash_then_delete_every_checkpoint_fails(store: Store) -> None:
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=10)
    _fill(log, 25)
    _rehash_from(store, 3, {"note": "forged"})
    _delete_checkpoints(store)
    report = log.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.checkpoints == 0
    assert report.problem.seq == 10  # the first record the cadence says must be sealed
    assert "not sealed" in report.problem.reason


def test_delete_newest_checkpoint_and_rewrite_later_records_fails(store: Store) -> None:
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=10)
    _fill(log, 25)
    _rehash_from(store, 15, {"note": "forged"})
    _delete_checkpoints(store, from_seq=20)
    report = log.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == 20
    # The live system goes on and seals the rewritten records in checkpoint 30, which
    # links to checkpoint 10: the signed gap is longer than the cadence.
    _fill(log, 10)
    report = log.verify()
    assert report.problem is not None
    assert report.problem.seq == 20
    assert "checkpoint 30 follows checkpoint 10" in report.problem.reason


def test_forged_records_appended_past_the_last_checkpoint(store: Store) -> None:
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=10)
    _fill(log, 20)
    _append_forged(store, 4)
    # Within the cadence nobody without the key can tell them from real appends; the
    # report shows them as unsealed (and `audit verify --sealed` fails on them).
    report = log.verify()
    assert report.ok
    assert report.to_dict()["unsealed"] == 4
    _append_forged(store, 6)
    report = log.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == 30
    assert "21..30" in report.problem.reason


def test_replaced_key_and_resigned_checkpoints_fail_against_the_trusted_key(
    store: Store,
) -> None:
    signer = AuditSigner.generate()
    log = AuditLog(store, signer=signer, checkpoint_every=10)
    _fill(log, 25)
    _rehash_from(store, 7, {"note": "forged"})
    attacker = AuditSigner.generate()
    _resign(store, attacker, 10)
    # A verifier that trusts whatever key file it finds is fooled ...
    assert AuditLog(store, signer=attacker, checkpoint_every=10).verify().ok
    # ... one given the real public key, or its pinned fingerprint, is not.
    report = log.verify(trusted_key=signer.public_key_b64)
    assert report.problem is not None
    assert "untrusted key" in report.problem.reason
    pinned = AuditLog(store, signer=attacker, checkpoint_every=10, key_fingerprint=signer.key_id)
    report = pinned.verify()
    assert report.problem is not None
    assert report.problem.seq == 10
    assert f"pinned key {signer.key_id}" in report.problem.reason


def test_external_anchor_catches_what_the_store_alone_cannot(store: Store, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor" / "audit.jsonl"
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=10, anchor_file=anchor)
    _fill(log, 6)
    log.checkpoint()  # an explicit checkpoint below the cadence (e.g. before an export)
    _fill(log, 6)  # and the cadence checkpoint at 10
    assert [cp.seq for cp in read_anchors(anchor)] == [6, 10]
    assert log.verify().ok
    assert log.verify().anchors == 2
    # Rewrite record 4 and delete every checkpoint: the store alone looks clean ...
    _rehash_from(store, 4, {"note": "forged"})
    _delete_checkpoints(store)
    unanchored = AuditLog(store, checkpoint_every=100)
    assert unanchored.verify().ok
    # ... the anchored checkpoints still name record 4.
    report = log.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == 4, report.problem
    # Deleting the anchored checkpoints without touching records is reported too.
    other_anchor = tmp_path / "fresh" / "a.jsonl"
    store2 = store
    with store2.session(write=True) as s:
        s.execute(sa.delete(AuditRecordRow))
        s.execute(sa.update(AuditHeadRow).values(seq=0, hash="0" * 64))
    log2 = AuditLog(
        store2, signer=AuditSigner.generate(), checkpoint_every=5, anchor_file=other_anchor
    )
    _fill(log2, 5)
    _delete_checkpoints(store2)
    report = log2.verify()
    assert report.problem is not None
    assert "deleted from the store" in report.problem.reason


def test_a_missing_anchor_file_is_a_finding(store: Store, tmp_path: Path) -> None:
    anchor = tmp_path / "a.jsonl"
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=5, anchor_file=anchor)
    _fill(log, 3)
    assert log.verify().ok  # no checkpoint yet, nothing to anchor
    _fill(log, 3)
    assert log.verify().ok
    anchor.unlink()
    report = log.verify()
    assert report.problem is not None
    assert "anchor file" in report.problem.reason


def test_anchor_is_written_only_when_the_checkpoint_commits(store: Store, tmp_path: Path) -> None:
    anchor = tmp_path / "audit.jsonl"
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=2, anchor_file=anchor)
    log.append("step", "a")
    with pytest.raises(RuntimeError), store.session(write=True) as s:
        log.append("step", "a", session=s)  # seq 2 would be checkpointed ...
        raise RuntimeError("... but the caller's transaction fails")
    assert not anchor.exists()
    log.append("step", "a")
    assert [cp.seq for cp in read_anchors(anchor)] == [2]
    assert log.verify().ok


def _bundle(store: Store, tmp_path: Path) -> tuple[Path, Path]:
    signer = AuditSigner.generate()
    log = AuditLog(store, signer=signer, checkpoint_every=4)
    for i in range(10):
        log.append("step", "agent", data={"i": i}, run_id="r1" if i % 3 == 0 else "r2")
    export_bundle(log, "r1", tmp_path / "ev")
    pem = tmp_path / "trusted.pem"
    pem.write_text(signer.public_key_pem())
    return tmp_path / "ev", pem


def _edited(src: Path, dst: Path, edit: object) -> Path:
    data = json.loads((src / "bundle.json").read_text())
    edit(data)  # type: ignore[operator]
    dst.mkdir(exist_ok=True)
    (dst / "bundle.json").write_text(json.dumps(data))
    return dst


def test_bundle_hiding_a_run_record_behind_its_digest_fails(store: Store, tmp_path: Path) -> None:
    ev, pem = _bundle(store, tmp_path)
    assert verify_bundle(ev, public_key=pem).ok

    def hide(d: dict) -> None:  # the attack: body replaced by its digest
        rec = next(r for r in d["records"] if r["seq"] == 4)
        rec["digest"] = body_digest(rec.pop("body"))

    report = verify_bundle(_edited(ev, tmp_path / "t1", hide), public_key=pem)
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == 4
    assert "manifest" in report.problem.reason

    def unlist(d: dict) -> None:  # ... and dropped from the manifest as well
        hide(d)
        d["manifest"]["records"] = [r for r in d["manifest"]["records"] if r[0] != 4]

    report = verify_bundle(_edited(ev, tmp_path / "t2", unlist), public_key=pem)
    assert report.problem is not None
    assert "signature" in report.problem.reason

    def strip(d: dict) -> None:  # no manifest at all
        del d["manifest"]

    assert not verify_bundle(_edited(ev, tmp_path / "t3", strip), public_key=pem).ok
