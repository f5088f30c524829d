"""The audit log detects tampering: 1,000 random trials of four kinds, all detected.

Each trial copies a sealed SQLite log, tampers with it through raw SQL (as an attacker
with database access but without the signing key would), and runs ``verify``.
"""

from __future__ import annotations

import random
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from daytwo.store import Store
from daytwo.store.tables.tracing import AuditRecordRow
from daytwo.tracing.audit import AuditLog
from daytwo.tracing.chain import body_digest, link_hash
from daytwo.tracing.signing import AuditSigner

RECORDS = 30
TRIALS = 1000
TEXT_COLUMNS = ["id", "kind", "actor", "subject", "run_id", "data", "prev_hash", "hash", "at"]


def _build(path: Path, signer: AuditSigner) -> None:
    store = Store(f"sqlite:///{path}")
    store.upgrade()
    log = AuditLog(store, signer=signer, checkpoint_every=10)
    rng = random.Random(7)
    for i in range(RECORDS):
        log.append(
            rng.choice(["run.start", "step", "tool.call", "policy.denial"]),
            f"agent-{rng.randrange(3)}",
            subject=f"subject-{i}",
            data={"i": i, "note": f"value {rng.randrange(10**6)}", "ok": bool(i % 2)},
            run_id=f"run-{i // 8}",
        )
    log.checkpoint()
    store.dispose()


def _flip_one_byte(db: sqlite3.Connection, rng: random.Random) -> tuple[int, str]:
    seq = rng.randrange(1, RECORDS + 1)
    column = rng.choice(TEXT_COLUMNS)
    (value,) = db.execute(f"SELECT {column} FROM audit_records WHERE seq=?", (seq,)).fetchone()
    text = str(value)
    pos = rng.randrange(len(text))
    alphabet = [c for c in 'abcdef0123456789xyz:-{}"' if c != text[pos]]
    new = text[:pos] + rng.choice(alphabet) + text[pos + 1 :]
    db.execute(f"UPDATE audit_records SET {column}=? WHERE seq=?", (new, seq))
    return seq, f"byte {pos} of {column} in record {seq}"


def _delete_row(db: sqlite3.Connection, rng: random.Random) -> tuple[int, str]:
    seq = rng.randrange(1, RECORDS + 1)
    db.execute("DELETE FROM audit_records WHERE seq=?", (seq,))
    return seq, f"deleted record {seq}"


def _swap_rows(db: sqlite3.Connection, rng: random.Random) -> tuple[int, str]:
    a, b = sorted(rng.sample(range(1, RECORDS + 1), 2))
    db.execute("UPDATE audit_records SET seq=-1 WHERE seq=?", (a,))
    db.execute("UPDATE audit_records SET seq=? WHERE seq=?", (a, b))
    db.execute("UPDATE audit_records SET seq=? WHERE seq=-1", (b,))
    return a, f"swapped records {a} and {b}"


def _forged_rehash(db: sqlite3.Connection, rng: random.Random) -> tuple[int, str]:
    """Change one record and recompute every hash after it (no key to re-sign)."""
    seq = rng.randrange(1, RECORDS + 1)
    db.execute(
        "UPDATE audit_records SET data=json_set(data, '$.note', 'forged') WHERE seq=?", (seq,)
    )
    rows = db.execute(
        "SELECT seq, id, at, kind, actor, subject, run_id, data FROM audit_records "
        "WHERE seq>=? ORDER BY seq",
        (seq,),
    ).fetchall()
    (prev,) = db.execute("SELECT prev_hash FROM audit_records WHERE seq=?", (seq,)).fetchone()
    import json
    from datetime import UTC, datetime

    from daytwo.tracing.audit import record_body
    from daytwo.tracing.chain import iso

    for s, rid, at, kind, actor, subject, run_id, data in rows:
        at_iso = iso(datetime.fromisoformat(at).replace(tzinfo=UTC))
        body = record_body(rid, at_iso, kind, actor, subject, run_id, json.loads(data))
        h = link_hash(s, prev, body_digest(body))
        db.execute("UPDATE audit_records SET prev_hash=?, hash=? WHERE seq=?", (prev, h, s))
        prev = h
    db.execute("UPDATE audit_head SET hash=? WHERE id=1", (prev,))
    return seq, f"forged re-hash from record {seq}"


KINDS = [_flip_one_byte, _delete_row, _swap_rows, _forged_rehash]


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """Trials copy the file 1,000 times: on tmpfs when there is one (fsync is free there)."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    work = Path(tempfile.mkdtemp(dir=shm))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
def test_thousand_random_tamper_trials_are_all_detected(tmp_path: Path, fast_dir: Path) -> None:
    signer = AuditSigner.generate()
    base = tmp_path / "base.db"
    _build(base, signer)
    # The untouched copy verifies.
    store = Store(f"sqlite:///{base}")
    assert AuditLog(store, signer=signer).verify().ok
    store.dispose()
    rng = random.Random(20261123)
    missed: list[str] = []
    misnamed: list[str] = []
    counts = dict.fromkeys((k.__name__ for k in KINDS), 0)
    work = fast_dir / "trial.db"
    trial_store = Store(f"sqlite:///{work}")  # one engine: its statement cache is reused
    for _ in range(TRIALS):
        trial_store.dispose()
        shutil.copyfile(base, work)
        kind = rng.choice(KINDS)
        counts[kind.__name__] += 1
        db = sqlite3.connect(work, isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")
        try:
            seq, what = kind(db, rng)
        finally:
            db.close()
        report = AuditLog(trial_store, signer=signer).verify()
        if report.ok:
            missed.append(what)
            continue
        assert report.problem is not None
        if kind is _forged_rehash:
            # Only the signed checkpoint that covers the record can expose a forgery.
            if not (seq <= report.problem.seq <= ((seq + 9) // 10) * 10):
                misnamed.append(f"{what}: named {report.problem.seq}")
        elif report.problem.seq != seq:
            misnamed.append(f"{what}: named {report.problem.seq} ({report.problem.reason})")
    trial_store.dispose()
    assert missed == []
    assert misnamed == []
    assert min(counts.values()) > 150, counts


def test_postgres_and_sqlite_detect_each_kind(store: Store) -> None:
    """The same attacks through the ORM on either backend."""
    signer = AuditSigner.generate()
    log = AuditLog(store, signer=signer, checkpoint_every=5)
    for i in range(12):
        log.append("step", "a", data={"i": i})
    log.checkpoint()
    assert log.verify().ok
    with store.session() as s:
        s.execute(sa.update(AuditRecordRow).where(AuditRecordRow.seq == 7).values(actor="b"))
    report = log.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == 7
    assert "modified" in report.problem.reason
    with store.session() as s:
        s.execute(sa.update(AuditRecordRow).where(AuditRecordRow.seq == 7).values(actor="a"))
        s.execute(sa.delete(AuditRecordRow).where(AuditRecordRow.seq == 12))
    report = log.verify()
    assert report.problem is not None
    assert report.problem.seq == 12
    # Verifying with another key than the one that signed is refused.
    other = AuditSigner.generate()
    report = log.verify(trusted_key=other.public_key_b64)
    assert not report.ok
