"""The append-only, hash-chained audit log with Ed25519-signed checkpoints.

Appends serialise on the single ``audit_head`` row: the first statement of an
append is an ``UPDATE ... RETURNING`` of that row, which takes PostgreSQL's row
lock and SQLite's write lock (waiting for the busy timeout) before the previous
hash is read, so concurrent appends from threads or processes never fork the
chain. Pass ``session=`` to append inside the caller's transaction: the record
then commits or rolls back with the caller's own writes.

A checkpoint is signed every ``checkpoint_every`` records (it signs the head and a
mark of every record since the previous one, so verification names the first
rewritten record) and, when an anchor file is configured, copied there once its
transaction commits. :func:`configure_audit` sets the process-wide defaults (signer,
cadence, anchor file, pinned key fingerprint) from the settings.

Never put erased content or secrets in ``data``: records are never deleted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from sqlalchemy import String, Table, bindparam, cast, event, select, update
from sqlalchemy.orm import Session

from daytwo.exceptions import ConfigError, InputError, IntegrityError
from daytwo.store import Store, new_id, utcnow
from daytwo.store.tables.tracing import AuditCheckpointRow, AuditHeadRow, AuditRecordRow
from daytwo.tracing.attributes import RUN_ID
from daytwo.tracing.chain import (
    ChainRecord,
    Checkpoint,
    Problem,
    VerifyReport,
    body_digest,
    checkpoint_message,
    iso,
    link_hash,
    marks_of,
    verify_chain,
)
from daytwo.tracing.signing import KEY_FILE, AuditSigner

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = [
    "AuditDefaults",
    "AuditLog",
    "AuditRecord",
    "check_pinned",
    "configure_audit",
    "record_body",
    "reset_audit_defaults",
    "set_default_signer",
]


@dataclass(frozen=True)
class AuditDefaults:
    """What every ``AuditLog(store)`` created without explicit arguments uses."""

    signer: AuditSigner | None = None
    checkpoint_every: int = 100
    anchor_file: Path | None = None
    key_fingerprint: str | None = None


_DEFAULTS = AuditDefaults()

_HEAD: Table = AuditHeadRow.__table__  # type: ignore[assignment]
_RECORDS: Table = AuditRecordRow.__table__  # type: ignore[assignment]
_BUMP_HEAD = (
    _HEAD.update()
    .where(_HEAD.c.id == 1)
    .values(seq=_HEAD.c.seq + 1)
    .returning(_HEAD.c.seq, _HEAD.c.hash)
)
_SET_HEAD_HASH = _HEAD.update().where(_HEAD.c.id == 1).values(hash=bindparam("new_hash"))
_INSERT_RECORD = _RECORDS.insert()


def set_default_signer(signer: AuditSigner | None) -> None:
    """The signer every ``AuditLog(store)`` created without one uses."""
    global _DEFAULTS
    _DEFAULTS = AuditDefaults(
        signer,
        _DEFAULTS.checkpoint_every,
        _DEFAULTS.anchor_file,
        _DEFAULTS.key_fingerprint,
    )


def reset_audit_defaults() -> None:
    """Forget the process-wide audit defaults (no signer, cadence 100, no anchor, no pin)."""
    global _DEFAULTS
    _DEFAULTS = AuditDefaults()


def check_pinned(signer: AuditSigner, fingerprint: str | None) -> None:
    """ConfigError when ``signer`` is not the key the settings pin (the key file was replaced)."""
    if fingerprint is not None and signer.key_id != fingerprint:
        raise ConfigError(
            f"the audit signing key has fingerprint {signer.key_id} but audit_key_fingerprint "
            f"pins {fingerprint}: the key file was replaced",
            hint="restore the original key file; only change the pin for a deliberate key rotation",
        )


def configure_audit(settings: Settings, *, create_key: bool = True) -> AuditDefaults:
    """Set the process-wide audit defaults from ``settings`` (called by setup_tracing and the CLI).

    Loads ``<data_dir>/audit_ed25519.key`` (created when absent and ``create_key``) and
    refuses it when ``audit_key_fingerprint`` pins another key.
    """
    global _DEFAULTS
    key = settings.data_dir / KEY_FILE
    signer = AuditSigner.load_or_create(key) if create_key or key.exists() else None
    if signer is not None:
        check_pinned(signer, settings.audit_key_fingerprint)
    _DEFAULTS = AuditDefaults(
        signer,
        settings.audit_checkpoint_every,
        settings.audit_anchor_file,
        settings.audit_key_fingerprint,
    )
    return _DEFAULTS


@dataclass(frozen=True)
class AuditRecord:
    """One appended record."""

    seq: int
    id: str
    at: datetime
    kind: str
    actor: str
    subject: str | None
    run_id: str | None
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "seq": self.seq,
            "id": self.id,
            "at": iso(self.at),
            "kind": self.kind,
            "actor": self.actor,
            "subject": self.subject,
            "run_id": self.run_id,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def record_body(
    record_id: str,
    at: str,
    kind: str,
    actor: str,
    subject: str | None,
    run_id: str | None,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """The hashed body of a record (``at`` already in :func:`iso` form)."""
    return {
        "id": record_id,
        "at": at,
        "kind": kind,
        "actor": actor,
        "subject": subject,
        "run_id": run_id,
        "data": dict(data),
    }


# How both backends render a stored time as text; anything else was edited by hand.
_STORED_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}(:\d{2})?)?")


_PENDING_ANCHORS = "daytwo.audit.pending_anchors"


def _write_pending_anchors(session: Session) -> None:
    from daytwo.tracing.anchor import append_anchor

    for path, cp in session.info.pop(_PENDING_ANCHORS, []):
        append_anchor(path, cp)


def _drop_pending_anchors(session: Session, _previous: Any) -> None:
    session.info.pop(_PENDING_ANCHORS, None)


def _current_run_id() -> str | None:
    span = trace.get_current_span()
    attrs = getattr(span, "attributes", None)
    if isinstance(attrs, Mapping):
        value = attrs.get(RUN_ID)
        return str(value) if value is not None else None
    return None


class AuditLog:
    """Append and verify the audit log of one store.

    ``signer`` signs a checkpoint every ``checkpoint_every`` records (and on
    :meth:`checkpoint`); it defaults to the process-wide signer that
    ``setup_tracing(store, settings)`` loads from ``<data_dir>/audit_ed25519.key``.
    Without any signer, no checkpoints are made. :meth:`for_data_dir` loads (or
    creates) the key explicitly. ``anchor_file`` receives a copy of every checkpoint
    (see :mod:`daytwo.tracing.anchor`); ``key_fingerprint`` pins the key that
    :meth:`verify` trusts. Unset arguments take the :func:`configure_audit` defaults.
    """

    def __init__(
        self,
        store: Store,
        *,
        signer: AuditSigner | None = None,
        checkpoint_every: int | None = None,
        anchor_file: Path | None = None,
        key_fingerprint: str | None = None,
    ) -> None:
        defaults = _DEFAULTS
        every = defaults.checkpoint_every if checkpoint_every is None else checkpoint_every
        if every < 1:
            raise InputError("checkpoint_every must be at least 1", hint="use e.g. 100")
        self.store = store
        self.signer = signer if signer is not None else defaults.signer
        self.checkpoint_every = every
        self.anchor_file = anchor_file if anchor_file is not None else defaults.anchor_file
        self.key_fingerprint = (
            key_fingerprint if key_fingerprint is not None else defaults.key_fingerprint
        )

    @classmethod
    def for_data_dir(cls, store: Store, data_dir: Path, **kw: Any) -> AuditLog:
        """An audit log signing with the key file in ``data_dir`` (created when absent)."""
        return cls(store, signer=AuditSigner.load_or_create(data_dir / KEY_FILE), **kw)

    @contextmanager
    def _session(self, session: Session | None) -> Iterator[Session]:
        if session is not None:
            yield session
        else:
            with self.store.session(write=True) as own:
                yield own

    def append(
        self,
        kind: str,
        actor: str,
        subject: str | None = None,
        data: Mapping[str, Any] | None = None,
        session: Session | None = None,
        *,
        run_id: str | None = None,
    ) -> AuditRecord:
        """Append one record (in ``session``'s transaction when given) and return it.

        ``run_id`` defaults to ``data["run_id"]``, else the current span's ``daytwo.run.id``.
        """
        if not kind or not actor:
            raise InputError("an audit record needs a kind and an actor", hint="pass both")
        payload = dict(data or {})
        if run_id is None:
            found = payload.get("run_id")
            run_id = str(found) if found is not None else _current_run_id()
        if run_id is not None and len(run_id) > 64:
            raise InputError(
                f"run id {run_id[:20]!r}... is longer than 64 characters", hint="use a shorter id"
            )
        if subject is not None:
            subject = subject[:255]
        record_id = new_id()
        at = utcnow()
        body = record_body(record_id, iso(at), kind[:64], actor[:255], subject, run_id, payload)
        digest = body_digest(body)  # validates data before any write

        def write(s: Session) -> tuple[int, str, str]:
            # Core statements built once: an append is three small statements.
            conn = s.connection()
            head = conn.execute(_BUMP_HEAD).one_or_none()
            if head is None:
                raise IntegrityError(
                    "the audit chain head is missing",
                    hint="run `daytwo db upgrade`; if the row was deleted, the log was tampered "
                    "with",
                )
            seq, prev_hash = int(head[0]), str(head[1])
            record_hash = link_hash(seq, prev_hash, digest)
            conn.execute(
                _INSERT_RECORD,
                {
                    "seq": seq,
                    "id": record_id,
                    "at": at,
                    "kind": body["kind"],
                    "actor": body["actor"],
                    "subject": subject,
                    "run_id": run_id,
                    "data": payload,
                    "prev_hash": prev_hash,
                    "hash": record_hash,
                },
            )
            conn.execute(_SET_HEAD_HASH, {"new_hash": record_hash})
            if self.signer is not None and seq % self.checkpoint_every == 0:
                self._write_checkpoint(s, seq, record_hash)
            s.flush()
            return seq, prev_hash, record_hash

        if session is not None:
            seq, prev_hash, record_hash = write(session)
        else:
            # Its own write transaction, retried while SQLite stays locked (it rolled back).
            seq, prev_hash, record_hash = self.store.write(write)
        return AuditRecord(
            seq,
            record_id,
            at,
            body["kind"],
            body["actor"],
            subject,
            run_id,
            payload,
            prev_hash,
            record_hash,
        )

    def _write_checkpoint(self, s: Session, seq: int, record_hash: str) -> Checkpoint:
        assert self.signer is not None
        prev_seq = s.scalar(
            select(AuditCheckpointRow.seq)
            .where(AuditCheckpointRow.seq < seq)
            .order_by(AuditCheckpointRow.seq.desc())
            .limit(1)
        )
        prev = int(prev_seq or 0)
        marks = marks_of(
            s.scalars(
                select(AuditRecordRow.hash)
                .where(AuditRecordRow.seq > prev, AuditRecordRow.seq <= seq)
                .order_by(AuditRecordRow.seq)
            )
        )
        at = iso(utcnow())
        key = self.signer.key_id
        cp = Checkpoint(
            seq=seq,
            hash=record_hash,
            prev_seq=prev,
            at=at,
            key_id=key,
            public_key=self.signer.public_key_b64,
            signature=self.signer.sign(checkpoint_message(seq, record_hash, prev, at, key, marks)),
            marks=marks,
        )
        s.add(
            AuditCheckpointRow(
                seq=cp.seq,
                hash=cp.hash,
                prev_seq=cp.prev_seq,
                at=datetime.fromisoformat(at),
                key_id=cp.key_id,
                public_key=cp.public_key,
                signature=cp.signature,
                marks=cp.marks,
            )
        )
        if self.anchor_file is not None:
            self._anchor_after_commit(s, cp)
        return cp

    def _anchor_after_commit(self, s: Session, cp: Checkpoint) -> None:
        """Copy ``cp`` to the anchor file once (and only if) its transaction commits."""
        assert self.anchor_file is not None
        pending: list[tuple[Path, Checkpoint]] = s.info.setdefault(_PENDING_ANCHORS, [])
        pending.append((self.anchor_file, cp))
        if not event.contains(s, "after_commit", _write_pending_anchors):
            event.listen(s, "after_commit", _write_pending_anchors)
            event.listen(s, "after_soft_rollback", _drop_pending_anchors)

    def checkpoint(self, session: Session | None = None) -> Checkpoint | None:
        """Sign the current head now (None when the log is empty or already sealed)."""
        if self.signer is None:
            raise InputError(
                "no audit signing key is loaded", hint="create the AuditLog with a signer"
            )
        with self._session(session) as s:
            # Lock the head like an append does, so the signed head is the real one.
            head = s.execute(
                update(AuditHeadRow)
                .where(AuditHeadRow.id == 1)
                .values(seq=AuditHeadRow.seq)
                .returning(AuditHeadRow.seq, AuditHeadRow.hash)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if head is None or int(head[0]) == 0:
                return None
            if s.get(AuditCheckpointRow, int(head[0])) is not None:
                return None
            return self._write_checkpoint(s, int(head[0]), str(head[1]))

    def records(
        self, *, run_id: str | None = None, since_seq: int = 0, limit: int | None = None
    ) -> list[AuditRecord]:
        """Records in chain order (optionally one run's, or after ``since_seq``)."""
        with self.store.session() as s:
            q = select(AuditRecordRow).where(AuditRecordRow.seq > since_seq)
            if run_id is not None:
                q = q.where(AuditRecordRow.run_id == run_id)
            q = q.order_by(AuditRecordRow.seq)
            if limit is not None:
                q = q.limit(limit)
            return [
                AuditRecord(
                    r.seq,
                    r.id,
                    r.at,
                    r.kind,
                    r.actor,
                    r.subject,
                    r.run_id,
                    dict(r.data),
                    r.prev_hash,
                    r.hash,
                )
                for r in s.scalars(q)
            ]

    def chain_records(self, s: Session, *, since_seq: int = 0) -> Iterator[ChainRecord]:
        """Records as verified (data and time read as raw text: unreadable ones are findings)."""
        q = (
            select(
                AuditRecordRow.seq,
                AuditRecordRow.id,
                cast(AuditRecordRow.at, String),
                AuditRecordRow.kind,
                AuditRecordRow.actor,
                AuditRecordRow.subject,
                AuditRecordRow.run_id,
                cast(AuditRecordRow.data, String),
                AuditRecordRow.prev_hash,
                AuditRecordRow.hash,
            )
            .where(AuditRecordRow.seq > since_seq)
            .order_by(AuditRecordRow.seq)
        )
        for seq, rid, at_raw, kind, actor, subject, run_id, raw, prev_hash, hash_ in s.execute(
            q.execution_options(yield_per=1000)
        ):
            try:
                data = json.loads(raw)
                if not _STORED_TIME.fullmatch(str(at_raw)):
                    raise ValueError(at_raw)
                at = datetime.fromisoformat(str(at_raw))
            except (TypeError, ValueError):
                data = at = None
            body = (
                record_body(
                    rid,
                    iso(at if at.tzinfo else at.replace(tzinfo=UTC)),
                    kind,
                    actor,
                    subject,
                    run_id,
                    data,
                )
                if isinstance(data, dict) and at is not None
                else None
            )
            yield ChainRecord(int(seq), prev_hash, hash_, body, None, rid)

    def checkpoints(self, s: Session) -> list[Checkpoint]:
        """Every checkpoint, by seq."""
        return [
            Checkpoint(
                r.seq, r.hash, r.prev_seq, iso(r.at), r.key_id, r.public_key, r.signature, r.marks
            )
            for r in s.scalars(select(AuditCheckpointRow).order_by(AuditCheckpointRow.seq))
        ]

    def verify(
        self,
        *,
        trusted_key: str | None = None,
        trusted_fingerprint: str | None = None,
        anchor_file: Path | None = None,
    ) -> VerifyReport:
        """Verify the chain, its head, its checkpoints and their cadence; name the first bad record.

        ``trusted_key`` (base64 raw Ed25519) defaults to the signer's public key when a
        signer is loaded; ``trusted_fingerprint`` (default: the pinned
        ``key_fingerprint``) must match the key of every checkpoint, so a replaced key
        file is caught. ``anchor_file`` (default: the configured one) holds checkpoints
        copied outside the store; each must still be in the store, unchanged.
        """
        fingerprint = trusted_fingerprint or self.key_fingerprint
        if trusted_key is None and self.signer is not None and fingerprint is None:
            trusted_key = self.signer.public_key_b64
        anchors_path = anchor_file if anchor_file is not None else self.anchor_file
        anchored: list[Checkpoint] = []
        if anchors_path is not None and (anchor_file is not None or anchors_path.exists()):
            from daytwo.tracing.anchor import read_anchors

            anchored = read_anchors(anchors_path)
        with self.store.session() as s:
            head_row = s.get(AuditHeadRow, 1)
            head = None if head_row is None else (int(head_row.seq), head_row.hash)
            report = verify_chain(
                self.chain_records(s),
                self.checkpoints(s),
                head=head,
                trusted_key=trusted_key,
                trusted_fingerprint=fingerprint,
                every=self.checkpoint_every,
                anchored=anchored,
                anchor_name=str(anchors_path),
            )
        if head is None and report.ok:
            report.ok = False
            report.problem = Problem(0, "the audit chain head row is missing")
        if report.ok and anchors_path is not None and not anchored and report.checkpoints:
            report.ok = False
            report.problem = Problem(
                report.sealed_seq,
                f"the audit anchor file {anchors_path} is missing or empty although the log "
                "has checkpoints: restore it (or run `daytwo audit anchor` if anchoring was "
                "only just configured)",
            )
        return report
