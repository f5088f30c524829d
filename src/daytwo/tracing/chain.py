"""The hash chain of the audit log, as pure functions shared by the DB and offline bundles.

Each record's body (id, time, kind, actor, subject, run id, data) is serialised as
RFC 8785 canonical JSON and hashed with SHA-256 (the *body digest*); the record's
hash is SHA-256 over the canonical JSON of ``{seq, prev_hash, body}``, so it links
to the record before it. Splitting body and link lets an evidence bundle carry
other runs' records as digests only and still prove the chain. Checkpoints sign
``{seq, hash, prev_seq, at, key_id}`` with Ed25519; only the key holder can make one.
Version-2 checkpoints also sign *marks*: the first 16 hex characters of every record
hash since the previous checkpoint, so a verifier names the first rewritten record
even when every later hash was recomputed to hide it.

A full-log verification also holds the log to its checkpoint *cadence* (one signed
checkpoint at least every ``every`` records, the first one linking to nothing), so
deleting checkpoints, or appending past the last one, is itself a finding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import rfc8785

from daytwo.exceptions import InputError
from daytwo.tracing.signing import key_id, verify_signature

__all__ = [
    "GENESIS",
    "ChainRecord",
    "Checkpoint",
    "Problem",
    "VerifyReport",
    "body_digest",
    "canonical",
    "checkpoint_message",
    "iso",
    "link_hash",
    "marks_of",
    "verify_chain",
]

MARK = 16
"""Hex characters of each record hash a version-2 checkpoint signs."""

GENESIS = "0" * 64
"""``prev_hash`` of the first record."""


def canonical(value: Any) -> bytes:
    """RFC 8785 canonical JSON bytes (InputError for values JSON cannot carry exactly)."""
    try:
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise InputError(
            f"audit data cannot be canonicalised as JSON: {exc}",
            hint="use only strings, booleans, null, lists, objects, finite numbers "
            "and integers within ±2^53",
        ) from exc


def iso(at: datetime) -> str:
    """The time as hashed: UTC ISO 8601 with microseconds."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def body_digest(body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a record body."""
    return hashlib.sha256(canonical(dict(body))).hexdigest()


def link_hash(seq: int, prev_hash: str, digest: str) -> str:
    """The record hash: SHA-256 over ``{seq, prev_hash, body}`` canonical JSON."""
    return hashlib.sha256(
        canonical({"seq": seq, "prev_hash": prev_hash, "body": digest})
    ).hexdigest()


def marks_of(hashes: Iterable[str]) -> str:
    """The marks a checkpoint signs: each record hash's first 16 hex characters, joined."""
    return "".join(h[:MARK] for h in hashes)


def checkpoint_message(
    seq: int, hash_: str, prev_seq: int, at: str, key: str, marks: str | None = None
) -> bytes:
    """The bytes a checkpoint signature covers (version 2 when it carries marks)."""
    message: dict[str, Any] = {
        "v": 1,
        "seq": seq,
        "hash": hash_,
        "prev_seq": prev_seq,
        "at": at,
        "key_id": key,
    }
    if marks is not None:
        message["v"] = 2
        message["marks"] = hashlib.sha256(marks.encode()).hexdigest()
    return canonical(message)


@dataclass(frozen=True)
class ChainRecord:
    """One record as verified: ``body`` is None when only its ``digest`` is known."""

    seq: int
    prev_hash: str
    hash: str
    body: dict[str, Any] | None = None
    digest: str | None = None
    record_id: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A signed chain head."""

    seq: int
    hash: str
    prev_seq: int
    at: str
    key_id: str
    public_key: str
    signature: str
    marks: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def message(self) -> bytes:
        """The bytes its signature covers."""
        return checkpoint_message(
            self.seq, self.hash, self.prev_seq, self.at, self.key_id, self.marks
        )

    def mark(self, seq: int) -> str | None:
        """The signed mark of record ``seq`` (None without marks or outside the checkpoint)."""
        if self.marks is None or not self.prev_seq < seq <= self.seq:
            return None
        start = (seq - self.prev_seq - 1) * MARK
        return self.marks[start : start + MARK]


@dataclass(frozen=True)
class Problem:
    """The first record that does not verify, and why."""

    seq: int
    reason: str
    record_id: str | None = None


@dataclass
class VerifyReport:
    """Outcome of verifying a chain (or a bundle)."""

    ok: bool
    records: int
    checkpoints: int
    last_seq: int
    sealed_seq: int
    problem: Problem | None = None
    anchors: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for ``--json``)."""
        data = asdict(self)
        data["unsealed"] = max(self.last_seq - self.sealed_seq, 0)
        return data


def _body_hash(record: ChainRecord) -> str | None:
    if record.body is not None:
        try:
            return body_digest(record.body)
        except InputError:
            return None
    return record.digest


def _trust_problem(
    cp: Checkpoint, trusted_key: str | None, trusted_fingerprint: str | None
) -> Problem | None:
    if trusted_key is not None and cp.public_key != trusted_key:
        return Problem(
            cp.seq,
            f"checkpoint {cp.seq} is signed by an untrusted key (key id {cp.key_id}, "
            f"trusted {key_id(trusted_key)}): the signing key was replaced",
        )
    if trusted_fingerprint is not None:
        try:
            found = key_id(cp.public_key)
        except ValueError:
            found = "unreadable"
        if found != trusted_fingerprint:
            return Problem(
                cp.seq,
                f"checkpoint {cp.seq} is signed by key {found}, not by the pinned key "
                f"{trusted_fingerprint}: the signing key was replaced",
            )
    if not verify_signature(cp.public_key, cp.signature, cp.message()):
        return Problem(cp.seq, f"checkpoint {cp.seq} has an invalid signature")
    if cp.marks is not None and len(cp.marks) != (cp.seq - cp.prev_seq) * MARK:
        return Problem(cp.seq, f"checkpoint {cp.seq} carries marks of the wrong length")
    return None


def _merge_anchored(
    checkpoints: Iterable[Checkpoint], anchored: Iterable[Checkpoint], anchor_name: str
) -> tuple[list[Checkpoint], dict[int, str]]:
    """Stored checkpoints, with anchored ones standing in where the store lost or changed one."""
    merged = {cp.seq: cp for cp in checkpoints}
    findings: dict[int, str] = {}
    for cp in anchored:
        have = merged.get(cp.seq)
        if have is None:
            findings[cp.seq] = (
                f"checkpoint {cp.seq} is recorded in {anchor_name} but was deleted from the store"
            )
        elif (have.hash, have.signature) != (cp.hash, cp.signature):
            findings[cp.seq] = (
                f"checkpoint {cp.seq} in the store differs from the one recorded in {anchor_name}"
            )
        else:
            continue
        merged[cp.seq] = cp
    return sorted(merged.values(), key=lambda c: c.seq), findings


def verify_chain(
    records: Iterable[ChainRecord],
    checkpoints: Iterable[Checkpoint],
    *,
    start_seq: int = 1,
    start_prev: str | None = GENESIS,
    head: tuple[int, str] | None = None,
    trusted_key: str | None = None,
    trusted_fingerprint: str | None = None,
    require_checkpoint_at_end: bool = False,
    every: int | None = None,
    anchored: Iterable[Checkpoint] = (),
    anchor_name: str = "the external anchor",
) -> VerifyReport:
    """Verify links, hashes, sequence, head and signed checkpoints; stop at the first problem.

    ``start_prev`` None accepts any ``prev_hash`` on the first record (a bundle starts
    mid-chain; its end is anchored by a signed checkpoint instead). ``trusted_key``
    (base64 raw Ed25519) or ``trusted_fingerprint`` (its :func:`key_id`) pins the key
    checkpoints must be signed with. ``every`` is the checkpoint cadence a full log is
    held to: the newest ``every`` records or more left unsealed are a finding.
    ``anchored`` are checkpoints kept outside the store (``anchor_name``): each must
    still be in the store, unchanged, and the records must still match it.
    """
    hashes: dict[int, tuple[str, str | None]] = {}
    count = 0
    expected = start_seq
    prev = start_prev
    first_seq = start_seq
    problem: Problem | None = None
    for rec in records:
        count += 1
        if rec.seq != expected:
            if rec.seq > expected:
                reason = (
                    f"record {expected} is missing (next record found is {rec.seq}): "
                    "records were deleted"
                )
                problem = Problem(expected, reason, None)
            else:
                problem = Problem(rec.seq, f"record {rec.seq} is out of order or duplicated")
            break
        digest = _body_hash(rec)
        if prev is not None and rec.prev_hash != prev:
            problem = Problem(
                rec.seq,
                f"record {rec.seq} does not link to record {rec.seq - 1} "
                "(inserted, deleted, reordered or modified)",
                rec.record_id,
            )
            break
        if digest is None or link_hash(rec.seq, rec.prev_hash, digest) != rec.hash:
            problem = Problem(
                rec.seq,
                f"record {rec.seq} does not match its hash (modified)",
                rec.record_id,
            )
            break
        hashes[rec.seq] = (rec.hash, rec.record_id)
        prev = rec.hash
        expected += 1
    last_seq = expected - 1
    checkpoint_count = 0
    anchors = 0
    full_log = start_prev is not None
    sealed = 0 if full_log else first_seq - 1
    if problem is None and head is not None and head != (last_seq, prev or GENESIS):
        if head[0] > last_seq:
            problem = Problem(last_seq + 1, f"records {last_seq + 1}..{head[0]} are missing")
        else:
            problem = Problem(
                head[0] if head[0] >= first_seq else last_seq,
                f"the chain head says seq {head[0]} but the records end at {last_seq} "
                "(records were appended around the log or the head was altered)",
            )
    if problem is None:
        anchored = list(anchored)
        anchors = len(anchored)
        ordered, anchor_findings = _merge_anchored(checkpoints, anchored, anchor_name)
        prev_cp: int | None = 0 if full_log else None
        for cp in ordered:
            checkpoint_count += cp.seq not in anchor_findings
            problem = _trust_problem(cp, trusted_key, trusted_fingerprint)
            if problem is not None:
                break
            if prev_cp is not None and cp.prev_seq != prev_cp:
                problem = Problem(
                    cp.prev_seq, f"checkpoint {cp.prev_seq} (before checkpoint {cp.seq}) is missing"
                )
                break
            if full_log and every is not None and cp.seq - cp.prev_seq > every:
                problem = Problem(
                    cp.prev_seq + every,
                    f"checkpoint {cp.seq} follows checkpoint {cp.prev_seq or 'none'}, but one is "
                    f"due every {every} records: checkpoints were deleted (records "
                    f"{cp.prev_seq + 1}..{cp.seq} may have been rewritten before they were "
                    "sealed again), or records were appended without the signing key",
                )
                break
            prev_cp = cp.seq
            if cp.seq < first_seq:
                continue
            for seq in range(max(cp.prev_seq + 1, first_seq), min(cp.seq, last_seq) + 1):
                mark = cp.mark(seq)
                if mark is not None and hashes[seq][0][:MARK] != mark:
                    problem = Problem(
                        seq,
                        f"record {seq} was rewritten: its hash differs from the one signed in "
                        f"checkpoint {cp.seq} (the records after it were re-hashed to hide it)",
                        hashes[seq][1],
                    )
                    break
            if problem is not None:
                break
            if cp.seq > last_seq:
                problem = Problem(
                    last_seq + 1,
                    f"records {last_seq + 1}..{cp.seq} are missing (checkpoint {cp.seq})",
                )
                break
            stored, rid = hashes[cp.seq]
            if stored != cp.hash:
                problem = Problem(
                    cp.seq,
                    f"records up to {cp.seq} were rewritten: record {cp.seq} does not match "
                    "its signed checkpoint",
                    rid,
                )
                break
            if cp.seq in anchor_findings:
                problem = Problem(cp.seq, anchor_findings[cp.seq])
                break
            sealed = cp.seq
    if problem is None and full_log and every is not None and last_seq - sealed >= every:
        problem = Problem(
            sealed + every,
            f"records {sealed + 1}..{last_seq} are not sealed by any checkpoint although one "
            f"is due every {every} records: checkpoints were deleted, or records were "
            "appended without the signing key",
        )
    if problem is None and require_checkpoint_at_end and sealed != last_seq:
        problem = Problem(last_seq, f"record {last_seq} is not covered by a signed checkpoint")
    return VerifyReport(
        problem is None, count, checkpoint_count, last_seq, sealed, problem, anchors
    )


def dumps(value: Any) -> str:
    """Stable pretty JSON for bundles."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
