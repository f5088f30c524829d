"""`daytwo costs` and `daytwo audit` end to end on a real SQLite store (in-process CLI)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from opentelemetry import trace

from daytwo.cli.main import run
from daytwo.settings import load_settings
from daytwo.store import Store
from daytwo.tracing import setup_tracing
from daytwo.tracing.audit import AuditLog, set_default_signer


@pytest.fixture
def populated(tmp_path: Path) -> Iterator[Store]:
    assert run(["db", "upgrade"]) == 0
    settings = load_settings()
    store = Store.from_settings(settings)
    handle = setup_tracing(store, settings)  # loads <data_dir>/audit_ed25519.key
    tracer = trace.get_tracer("daytwo.test")
    try:
        for run_id, principal, model in [("r1", "alice", "gpt-4o-mini"), ("r2", "bob", "mystery")]:
            attrs = {"daytwo.run.id": run_id, "daytwo.principal": principal}
            with tracer.start_as_current_span(f"invoke_agent {run_id}", attributes=attrs):
                with tracer.start_as_current_span(f"chat {model}") as span:
                    span.set_attributes(
                        {
                            "gen_ai.operation.name": "chat",
                            "gen_ai.request.model": model,
                            "gen_ai.usage.input_tokens": 1000,
                            "gen_ai.usage.output_tokens": 100,
                            "gen_ai.usage.cache_read.input_tokens": 200,
                        }
                    )
        handle.flush()
        log = AuditLog(store, checkpoint_every=3)
        assert log.signer is not None
        for i in range(7):
            log.append("step", "runtime", data={"i": i}, run_id="r1" if i < 4 else "r2")
        yield store
    finally:
        handle.shutdown()
        set_default_signer(None)
        store.dispose()


def test_costs_cli(populated: Store, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(["costs", "--by", "principal", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    groups = {g["key"]: g for g in out["groups"]}
    expected = (800 * Decimal("0.15") + 200 * Decimal("0.075") + 100 * Decimal("0.6")) / 10**6
    assert Decimal(groups["alice"]["cost_usd"]) == expected
    assert groups["bob"]["unpriced_spans"] == 1
    assert out["total"]["unpriced_spans"] == 1
    assert run(["costs", "--by", "model"]) == 0
    text = capsys.readouterr().out
    assert "1 calls have no known price" in text
    assert run(["costs", "--by", "colour"]) == 2
    assert "unknown --by 'colour'" in capsys.readouterr().err
    assert run(["costs", "reprice", "--since", "yesterday"]) == 2
    assert "is not a date" in capsys.readouterr().err
    assert run(["costs", "reprice", "--since", "2020-01-01", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"spans": 2, "changed": 0, "unpriced": 1}


def test_audit_cli(populated: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert run(["audit", "verify", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["records"] == 7
    assert report["checkpoints"] == 2
    assert run(["audit", "list", "--run", "r2", "--json"]) == 0
    assert [r["seq"] for r in json.loads(capsys.readouterr().out)] == [5, 6, 7]
    assert run(["audit", "export", "r1", "--out", "ev", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["checkpoint_seq"] == 6
    assert run(["audit", "verify-bundle", "ev", "--public-key", "ev/public_key.pem"]) == 0
    assert "OK bundle" in capsys.readouterr().out
    assert run(["audit", "export", "r1", "--out", "ev"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert run(["audit", "verify-bundle", "missing-dir"]) == 2
    db = sqlite3.connect(tmp_path / ".daytwo" / "daytwo.db")
    db.execute("UPDATE audit_records SET actor='mallory' WHERE seq=3")
    db.commit()
    db.close()
    assert run(["audit", "verify"]) == 1
    err = capsys.readouterr().err
    assert "first bad record 3" in err
    assert "modified" in err
    assert run(["audit", "purge-traces", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spans"] == 0


def test_audit_cli_catches_the_reported_rewrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 22 from the CLI: rehash + delete checkpoints, replaced key, anchoring."""
    monkeypatch.setenv("DAYTWO_AUDIT_CHECKPOINT_EVERY", "5")
    monkeypatch.setenv("DAYTWO_AUDIT_ANCHOR_FILE", str(tmp_path / "anchor" / "audit.jsonl"))
    assert run(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert run(["audit", "key", "--out", "trusted.pem", "--json"]) == 0
    fingerprint = json.loads(capsys.readouterr().out)["key_id"]
    settings = load_settings()
    store = Store.from_settings(settings)
    try:
        from daytwo.tracing.audit import configure_audit, reset_audit_defaults

        configure_audit(settings)
        log = AuditLog(store)
        for i in range(12):
            log.append("step", "agent:support", data={"i": i}, run_id="r1")
        reset_audit_defaults()
    finally:
        store.dispose()
    assert run(["audit", "verify", "--public-key", "trusted.pem", "--sealed"]) == 1
    assert "records 11..12 are not yet sealed" in " ".join(capsys.readouterr().err.split())
    assert run(["audit", "anchor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seq"] == 12
    assert run(["audit", "verify", "--public-key", "trusted.pem", "--sealed", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["anchors"] == 3  # 5, 10, 12

    db = sqlite3.connect(tmp_path / ".daytwo" / "daytwo.db")
    rows = db.execute("SELECT seq, id, at, kind, actor, subject, run_id, data FROM audit_records "
                      "WHERE seq >= 2 ORDER BY seq").fetchall()  # fmt: skip
    (prev,) = db.execute("SELECT prev_hash FROM audit_records WHERE seq=2").fetchone()
    from datetime import UTC, datetime

    from daytwo.tracing.audit import record_body
    from daytwo.tracing.chain import body_digest, iso, link_hash

    for seq, rid, at, kind, actor, subject, run_id, data in rows:
        body = record_body(
            rid, iso(datetime.fromisoformat(at).replace(tzinfo=UTC)), kind,
            "mallory" if seq == 2 else actor, subject, run_id, json.loads(data),
        )  # fmt: skip
        h = link_hash(seq, prev, body_digest(body))
        db.execute(
            "UPDATE audit_records SET actor=?, prev_hash=?, hash=? WHERE seq=?",
            (body["actor"], prev, h, seq),
        )
        prev = h
    db.execute("UPDATE audit_head SET hash=? WHERE id=1", (prev,))
    db.execute("DELETE FROM audit_checkpoints")
    db.commit()
    db.close()
    assert run(["audit", "verify"]) == 1
    assert "first bad record 2" in capsys.readouterr().err  # named through the anchor file
    # Without the anchor the cadence still fails the log.
    monkeypatch.delenv("DAYTWO_AUDIT_ANCHOR_FILE")
    assert run(["audit", "verify", "--json"]) == 1
    assert "not sealed" in json.loads(capsys.readouterr().out)["problem"]["reason"]

    # A replaced key file: refused for signing, and its checkpoints fail verification.
    (tmp_path / ".daytwo" / "audit_ed25519.key").unlink()
    monkeypatch.setenv("DAYTWO_AUDIT_KEY_FINGERPRINT", fingerprint)
    assert run(["audit", "checkpoint"]) == 2
    assert "the key file was replaced" in " ".join(capsys.readouterr().err.split())
    monkeypatch.delenv("DAYTWO_AUDIT_KEY_FINGERPRINT")
    assert run(["audit", "checkpoint"]) == 0  # signs the forged head with the new key
    capsys.readouterr()
    assert run(["audit", "verify", "--public-key", "trusted.pem"]) == 1
    assert "untrusted key" in " ".join(capsys.readouterr().err.split())
    monkeypatch.setenv("DAYTWO_AUDIT_KEY_FINGERPRINT", fingerprint)
    assert run(["audit", "verify"]) == 1
    assert f"not by the pinned key {fingerprint}" in " ".join(capsys.readouterr().err.split())
