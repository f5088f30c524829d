"""The hash chain of the audit log, as pure functions shared by the DB and offline bundles.

Each record's body (id, time, kind, actor, subject, run id, data) is serialised as
RFC 8785 canonical JSON and hashed with SHA-256 (the *body digest*); the record's
hash is SHA-256 over the canonical JSON of ``{seq, prev_hash, body}``, so it links
to the record before it. Splitting body and link lets an evidence bundle carry
other runs' records as digests only and still prove the chain. Checkpoints sign
``{seq, hash, prev_seq, at, key_id}`` with Ed25519; only the key holder can make one.
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
from daytwo.tracing.signing import verify_signature

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
    "verify_chain",
]

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


def checkpoint_message(seq: int, hash_: str, prev_seq: int, at: str, key: str) -> bytes:
    """The bytes a checkpoint signature covers."""
    return canonical(
        {"v": 1, "seq": seq, "hash": hash_, "prev_seq": prev_seq, "at": at, "key_id": key}
    )


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

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)


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


def verify_chain(
    records: Iterable[ChainRecord],
    checkpoints: Iterable[Checkpoint],
    *,
    start_seq: int = 1,
    start_prev: str | None = GENESIS,
    head: tuple[int, str] | None = None,
    trusted_key: str | None = None,
    require_checkpoint_at_end: bool = False,
) -> VerifyReport:
    """Verify links, hashes, sequence, head and signed checkpoints; stop at the first problem.

    ``start_prev`` None accepts any ``prev_hash`` on the first record (a bundle starts
    mid-chain; its end is anchored by a signed checkpoint instead). ``trusted_key``
    (base64 raw Ed25519) pins the key checkpoints must be signed with.
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
    sealed = first_seq - 1 if start_prev is None else 0
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
        prev_cp: int | None = None
        for cp in sorted(checkpoints, key=lambda c: c.seq):
            checkpoint_count += 1
            if trusted_key is not None and cp.public_key != trusted_key:
                problem = Problem(cp.seq, f"checkpoint {cp.seq} is signed by an untrusted key")
                break
            msg = checkpoint_message(cp.seq, cp.hash, cp.prev_seq, cp.at, cp.key_id)
            if not verify_signature(cp.public_key, cp.signature, msg):
                problem = Problem(cp.seq, f"checkpoint {cp.seq} has an invalid signature")
                break
            if prev_cp is not None and cp.prev_seq != prev_cp:
                problem = Problem(
                    cp.prev_seq, f"checkpoint {cp.prev_seq} (before checkpoint {cp.seq}) is missing"
                )
                break
            prev_cp = cp.seq
            if cp.seq < first_seq:
                continue
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
            sealed = cp.seq
    if problem is None and require_checkpoint_at_end and sealed != last_seq:
        problem = Problem(last_seq, f"record {last_seq} is not covered by a signed checkpoint")
    return VerifyReport(problem is None, count, checkpoint_count, last_seq, sealed, problem)


def dumps(value: Any) -> str:
    """Stable pretty JSON for bundles."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
