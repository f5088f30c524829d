"""Evidence bundles: one run's audit records, anchored to a signed checkpoint, verifiable offline.

A bundle holds the chain segment from the run's first record up to the first
checkpoint at or after its last record. The run's records are complete; records of
other runs in between carry only their body digest (their content stays private),
which is enough to check every link up to the signed checkpoint. ``bundle.json`` +
``public_key.pem`` are all a verifier needs (``daytwo audit verify-bundle DIR``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select

from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.store import utcnow
from daytwo.store.tables.tracing import AuditCheckpointRow, AuditRecordRow
from daytwo.tracing.audit import AuditLog, record_body
from daytwo.tracing.chain import (
    ChainRecord,
    Checkpoint,
    Problem,
    VerifyReport,
    body_digest,
    dumps,
    iso,
    verify_chain,
)

__all__ = ["BUNDLE_FILE", "FORMAT", "BundleInfo", "export_bundle", "verify_bundle"]

FORMAT = "daytwo-audit-bundle/1"
BUNDLE_FILE = "bundle.json"
_README = """daytwo audit evidence bundle ({format})

Run: {run_id}
Records {first}..{last} of the audit chain; {full} belong to the run (complete),
the others carry only their body digest. The last record is sealed by the Ed25519
checkpoint in bundle.json, signed with the key in public_key.pem (key id {key_id}).

Verify offline:  daytwo audit verify-bundle {dirname} --public-key public_key.pem
Each record hash = SHA-256(RFC 8785 JSON of {{seq, prev_hash, body: SHA-256(RFC 8785 body)}}).
"""


@dataclass(frozen=True)
class BundleInfo:
    """What :func:`export_bundle` wrote."""

    path: Path
    run_id: str
    first_seq: int
    last_seq: int
    run_records: int
    checkpoint_seq: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "path": str(self.path),
            "run_id": self.run_id,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "run_records": self.run_records,
            "checkpoint_seq": self.checkpoint_seq,
        }


def _checkpoint_at_or_after(log: AuditLog, seq: int) -> Checkpoint | None:
    with log.store.session() as s:
        row = s.scalars(
            select(AuditCheckpointRow)
            .where(AuditCheckpointRow.seq >= seq)
            .order_by(AuditCheckpointRow.seq)
            .limit(1)
        ).first()
        if row is None:
            return None
        return Checkpoint(
            row.seq, row.hash, row.prev_seq, iso(row.at), row.key_id, row.public_key, row.signature
        )


def export_bundle(log: AuditLog, run_id: str, out: Path) -> BundleInfo:
    """Write the evidence bundle of ``run_id`` into the new directory ``out``.

    Signs a checkpoint first when none covers the run's last record yet (needs the
    signing key). The directory appears complete or not at all.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConflictError(
            f"{out} already exists and is not an empty directory",
            hint="choose a new --out directory",
        )
    with log.store.session() as s:
        first, last, count = s.execute(
            select(func.min(AuditRecordRow.seq), func.max(AuditRecordRow.seq), func.count()).where(
                AuditRecordRow.run_id == run_id
            )
        ).one()
    if not count:
        raise NotFoundError(
            f"no audit records for run {run_id!r}",
            hint="check the run id with `daytwo audit list --json`",
        )
    cp = _checkpoint_at_or_after(log, int(last))
    if cp is None:
        if log.signer is None:
            raise InputError(
                "no checkpoint covers this run yet and no signing key is loaded",
                hint="run `daytwo audit checkpoint` with the key, then export again",
            )
        log.checkpoint()
        cp = _checkpoint_at_or_after(log, int(last))
        assert cp is not None
    records: list[dict[str, Any]] = []
    with log.store.session() as s:
        for rec in log.chain_records(s, since_seq=int(first) - 1):
            if rec.seq > cp.seq:
                break
            body = rec.body
            if body is not None and body.get("run_id") == run_id:
                records.append(
                    {"seq": rec.seq, "prev_hash": rec.prev_hash, "hash": rec.hash, "body": body}
                )
            else:
                digest = body_digest(body) if body is not None else "unreadable"
                records.append(
                    {"seq": rec.seq, "prev_hash": rec.prev_hash, "hash": rec.hash, "digest": digest}
                )
    pem = (
        Ed25519PublicKey.from_public_bytes(base64.b64decode(cp.public_key))
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    bundle = {
        "format": FORMAT,
        "run_id": run_id,
        "created_at": iso(utcnow()),
        "records": records,
        "checkpoint": cp.to_dict(),
        "public_key": cp.public_key,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".bundle-", dir=out.parent))
    try:
        (tmp / BUNDLE_FILE).write_text(dumps(bundle) + "\n", encoding="utf-8")
        (tmp / "public_key.pem").write_text(pem, encoding="utf-8")
        (tmp / "README.txt").write_text(
            _README.format(
                format=FORMAT,
                run_id=run_id,
                first=first,
                last=cp.seq,
                full=count,
                key_id=cp.key_id,
                dirname=out.name,
            ),
            encoding="utf-8",
        )
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return BundleInfo(out, run_id, int(first), cp.seq, int(count), cp.seq)


def _load_public_key(path: Path) -> str:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read the public key {path}: {exc}", hint="pass an Ed25519 PEM public key"
        ) from exc
    if not isinstance(key, Ed25519PublicKey):
        raise InputError(f"{path} is not an Ed25519 public key", hint="pass the audit key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _bad(reason: str) -> VerifyReport:
    return VerifyReport(False, 0, 0, 0, 0, Problem(0, reason))


def verify_bundle(path: Path, public_key: Path | None = None) -> VerifyReport:
    """Verify a bundle directory offline; ``public_key`` pins the key (else the bundle's own)."""
    file = path / BUNDLE_FILE if path.is_dir() else path
    try:
        bundle = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotFoundError(
            f"{file} does not exist", hint="pass the directory written by `daytwo audit export`"
        ) from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return _bad(f"{file} is not readable JSON: {exc}")
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        return _bad(f"{file} is not a {FORMAT} bundle")
    trusted = _load_public_key(public_key) if public_key is not None else None
    run_id = bundle.get("run_id")
    try:
        cp = Checkpoint(**bundle["checkpoint"])
        if trusted is None:
            trusted = str(bundle["public_key"])
        chain: list[ChainRecord] = []
        for item in bundle["records"]:
            body = item.get("body")
            if body is not None:
                body = record_body(
                    body["id"],
                    body["at"],
                    body["kind"],
                    body["actor"],
                    body["subject"],
                    body["run_id"],
                    body["data"],
                )
                if body["run_id"] != run_id:
                    return _bad(f"record {item['seq']} belongs to another run than {run_id!r}")
            chain.append(
                ChainRecord(
                    int(item["seq"]),
                    str(item["prev_hash"]),
                    str(item["hash"]),
                    body,
                    None if body is not None else str(item.get("digest")),
                    None if body is None else str(body["id"]),
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"{file} is malformed: {type(exc).__name__}: {exc}")
    if not chain:
        return _bad("the bundle holds no records")
    if not any(c.body is not None for c in chain):
        return _bad(f"the bundle holds no record of run {run_id!r}")
    return verify_chain(
        chain,
        [cp],
        start_seq=chain[0].seq,
        start_prev=None,
        trusted_key=trusted,
        require_checkpoint_at_end=True,
    )
