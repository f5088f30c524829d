"""Evidence bundles: one run's audit records, anchored to a signed checkpoint, verifiable offline.

A bundle holds the chain segment from the run's first record up to the first
checkpoint at or after its last record. The run's records are complete; records of
other runs in between carry only their body digest (their content stays private),
which is enough to check every link up to the signed checkpoint. A *manifest* signed
with the same key lists the seq and body digest of every record of the run, so a
bundle that hides one of the run's records (drops its body, or swaps it for its
digest) fails. ``bundle.json`` + ``public_key.pem`` are all a verifier needs
(``daytwo audit verify-bundle DIR``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    canonical,
    dumps,
    iso,
    verify_chain,
)
from daytwo.tracing.signing import load_public_key, public_key_pem, verify_signature

__all__ = ["BUNDLE_FILE", "FORMAT", "BundleInfo", "export_bundle", "verify_bundle"]

FORMAT = "daytwo-audit-bundle/2"
BUNDLE_FILE = "bundle.json"
_README = """daytwo audit evidence bundle ({format})

Run: {run_id}
Records {first}..{last} of the audit chain; {full} belong to the run (complete),
the others carry only their body digest. The last record is sealed by the Ed25519
checkpoint in bundle.json, signed with the key in public_key.pem (key id {key_id}).
The signed "manifest" lists [seq, body digest] of every record of the run.

Verify offline:  daytwo audit verify-bundle {dirname} --public-key TRUSTED.pem
(use the key you obtained from the operator, not the copy in this directory).
Each record hash = SHA-256(RFC 8785 JSON of {{seq, prev_hash, body: SHA-256(RFC 8785 body)}}).
The checkpoint signature covers RFC 8785 JSON of {{v: 2, seq, hash, prev_seq, at, key_id,
marks: SHA-256(marks)}}; the manifest signature covers RFC 8785 JSON of the manifest
without its "signature" field.
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
            row.seq,
            row.hash,
            row.prev_seq,
            iso(row.at),
            row.key_id,
            row.public_key,
            row.signature,
            row.marks,
        )


def export_bundle(log: AuditLog, run_id: str, out: Path) -> BundleInfo:
    """Write the evidence bundle of ``run_id`` into the new directory ``out``.

    Signs a checkpoint first when none covers the run's last record yet, and the
    manifest of the run's records (needs the signing key that signed that checkpoint).
    The directory appears complete or not at all.
    """
    signer = log.signer
    if signer is None:
        raise InputError(
            "exporting an evidence bundle needs the audit signing key",
            hint="run it where <data_dir>/audit_ed25519.key is (`daytwo audit export`)",
        )
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
        log.checkpoint()
        cp = _checkpoint_at_or_after(log, int(last))
        assert cp is not None
    if cp.public_key != signer.public_key_b64:
        raise ConflictError(
            f"checkpoint {cp.seq}, which seals this run, was signed with key {cp.key_id}, "
            f"but the loaded signing key is {signer.key_id}",
            hint="export with the key that signed it (the manifest must be signed by the same key)",
        )
    records: list[dict[str, Any]] = []
    listed: list[list[Any]] = []
    with log.store.session() as s:
        for rec in log.chain_records(s, since_seq=int(first) - 1):
            if rec.seq > cp.seq:
                break
            body = rec.body
            if body is not None and body.get("run_id") == run_id:
                records.append(
                    {"seq": rec.seq, "prev_hash": rec.prev_hash, "hash": rec.hash, "body": body}
                )
                listed.append([rec.seq, body_digest(body)])
            else:
                digest = body_digest(body) if body is not None else "unreadable"
                records.append(
                    {"seq": rec.seq, "prev_hash": rec.prev_hash, "hash": rec.hash, "digest": digest}
                )
    pem = public_key_pem(cp.public_key)
    manifest: dict[str, Any] = {
        "v": 1,
        "run_id": run_id,
        "first_seq": records[0]["seq"],
        "checkpoint_seq": cp.seq,
        "key_id": signer.key_id,
        "records": listed,
    }
    manifest["signature"] = signer.sign(canonical(manifest))
    bundle = {
        "format": FORMAT,
        "run_id": run_id,
        "created_at": iso(utcnow()),
        "records": records,
        "checkpoint": cp.to_dict(),
        "public_key": cp.public_key,
        "manifest": manifest,
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


def _bad(reason: str) -> VerifyReport:
    return VerifyReport(False, 0, 0, 0, 0, Problem(0, reason))


def _check_manifest(
    manifest: Any, run_id: Any, chain: list[ChainRecord], cp: Checkpoint, trusted: str
) -> Problem | None:
    """The signed list of the run's records must match the records the bundle shows in full."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("signature"), str):
        return Problem(0, "the bundle has no signed manifest of the run's records")
    unsigned = {k: v for k, v in manifest.items() if k != "signature"}
    try:
        message = canonical(unsigned)
    except ValueError:
        return Problem(0, "the bundle's manifest is malformed")
    if not verify_signature(trusted, manifest["signature"], message):
        return Problem(0, "the manifest's signature is invalid (or not made with the trusted key)")
    if (unsigned.get("run_id"), unsigned.get("checkpoint_seq"), unsigned.get("first_seq")) != (
        run_id,
        cp.seq,
        chain[0].seq,
    ):
        return Problem(0, "the manifest is for another run or another part of the chain")
    try:
        listed = {int(seq): str(digest) for seq, digest in unsigned["records"]}
    except (KeyError, TypeError, ValueError):
        return Problem(0, "the manifest's record list is malformed")
    shown = {c.seq: c for c in chain if c.body is not None}
    for seq in sorted(set(listed) | set(shown)):
        rec = shown.get(seq)
        if rec is None:
            return Problem(
                seq,
                f"record {seq} of run {run_id!r} is listed in the signed manifest but its body "
                "is missing from the bundle (hidden or replaced by its digest)",
            )
        assert rec.body is not None
        if seq not in listed:
            return Problem(seq, f"record {seq} is not in the signed manifest of run {run_id!r}")
        try:
            digest = body_digest(rec.body)
        except InputError:
            digest = "unreadable"
        if digest != listed[seq]:
            return Problem(
                seq, f"record {seq} differs from its digest in the signed manifest", rec.record_id
            )
    return None


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
    trusted = load_public_key(public_key) if public_key is not None else None
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
    manifest_problem = _check_manifest(bundle.get("manifest"), run_id, chain, cp, trusted)
    if manifest_problem is not None:
        return VerifyReport(False, len(chain), 0, chain[-1].seq, 0, manifest_problem)
    return verify_chain(
        chain,
        [cp],
        start_seq=chain[0].seq,
        start_prev=None,
        trusted_key=trusted,
        require_checkpoint_at_end=True,
    )
