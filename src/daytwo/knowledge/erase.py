"""Erase (GDPR): remove documents everywhere and leave a receipt without their content.

:func:`erase` selects documents by id, by a metadata ``key=value`` or by a data subject
(the scalar metadata keys in :data:`SUBJECT_KEYS`), then in ONE transaction deletes
them from the system of record (documents, ACL, metadata), deletes their chunks from
every generation that still holds chunks (active, shadow, not yet pruned) which also
removes them from the keyword index (FTS triggers / the GIN expression index), leaves
ANN tombstones, and appends an erase receipt to the audit log: what (the kind of
selector, counts, salted SHA-256 hashes of the selector value and of the document
ids), when, by whom; never an id, the text, title or metadata. The salt is random per
receipt and kept in it: whoever knows an id (the data subject, an auditor) can check
that a receipt covers it, while the hash-chained record (which can never be changed
afterwards) does not name it. In the same transaction the erased ids are replaced by
``[erased]`` in stored decision records (:func:`daytwo.tracing.decisions.scrub_decisions`).

After the commit the open ANN indexes apply the tombstones and are saved, so the index
files no longer return the vectors. Physically removing the bytes (SQLite free pages,
FTS segments, the WAL, usearch slots) is :func:`daytwo.knowledge.maintenance.vacuum`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.generations import write_lock
from daytwo.knowledge.indexes import AllowedCache, Indexes
from daytwo.knowledge.writes import replace_chunks
from daytwo.store.tables.knowledge import (
    KbAcl,
    KbCollection,
    KbDocMeta,
    KbDocument,
    KbGeneration,
)
from daytwo.tracing.decisions import scrub_decisions

__all__ = ["SUBJECT_KEYS", "EraseReceipt", "erase", "parse_where", "salted_sha256"]

SUBJECT_KEYS = ("subject", "subject_id", "data_subject")
"""Metadata keys naming the data subject a document is about (``--subject ID``)."""


@dataclass(frozen=True)
class EraseReceipt:
    """What an erase removed (no content), and the audit record that proves it."""

    collection: str
    selector: dict[str, str]  # kind, salt, value_sha256 (never the value)
    documents: int
    chunks: dict[str, int] = field(default_factory=dict)
    audit_seq: int = 0
    audit_id: str = ""
    at: str = ""
    actor: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (CLI ``--json``)."""
        return dict(self.__dict__)


def salted_sha256(salt: str, value: str) -> str:
    """SHA-256 hex of ``salt`` and ``value`` (how receipts name selectors and documents)."""
    return hashlib.sha256(f"{salt}\x00{value}".encode()).hexdigest()


def parse_where(spec: str) -> tuple[str, str]:
    """``key=value`` (InputError naming the fix otherwise)."""
    key, sep, value = spec.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise InputError(
            f"--where {spec!r} is not key=value", hint="for example --where customer=c-042"
        )
    return key.strip(), value.strip()


def _select(
    session: Any, collection: str, document: str | None, where: str | None, subject: str | None
) -> tuple[tuple[str, str], list[str]]:
    given = [(k, v) for k, v in (("document", document), ("where", where), ("subject", subject))]
    chosen = [(k, v) for k, v in given if v is not None]
    if len(chosen) != 1:
        raise InputError(
            "give exactly one of --document, --where or --subject",
            hint="for example daytwo kb erase --collection docs --document faq-1",
        )
    kind, value = chosen[0]
    assert value is not None
    if kind == "document":
        ids = list(
            session.scalars(
                sa.select(KbDocument.doc_id).where(
                    KbDocument.collection == collection, KbDocument.doc_id == value
                )
            )
        )
        missing = f"document {value!r} does not exist in collection {collection!r}"
    elif kind == "where":
        key, val = parse_where(value)
        ids = list(
            session.scalars(
                sa.select(KbDocMeta.doc_id).where(
                    KbDocMeta.collection == collection, KbDocMeta.key == key, KbDocMeta.value == val
                )
            )
        )
        missing = f"no document of {collection!r} has metadata {key}={val}"
    else:
        ids = list(
            session.scalars(
                sa.select(KbDocMeta.doc_id)
                .where(
                    KbDocMeta.collection == collection,
                    KbDocMeta.key.in_(SUBJECT_KEYS),
                    KbDocMeta.value == value,
                )
                .distinct()
            )
        )
        missing = f"no document of {collection!r} is about subject {value!r}"
    if not ids:
        raise NotFoundError(missing, hint="nothing was erased; check the id (daytwo kb stats)")
    return (kind, value), sorted(set(ids))


def erase(
    kb: Indexes,
    collection: str,
    *,
    document: str | None = None,
    where: str | None = None,
    subject: str | None = None,
    actor: str = "cli",
) -> EraseReceipt:
    """Erase the selected documents everywhere (see the module docstring); all or nothing."""
    from daytwo.tracing.audit import AuditLog

    with kb.store.session(write=True) as session:
        write_lock(session, collection)
        if session.get(KbCollection, collection) is None:
            raise NotFoundError(
                f"collection {collection!r} does not exist", hint="see daytwo kb stats"
            )
        (kind, value), ids = _select(session, collection, document, where, subject)
        salt = secrets.token_hex(16)
        selector = {"kind": kind, "salt": salt, "value_sha256": salted_sha256(salt, value)}
        # First write takes the SQLite write lock before the rest of the transaction reads.
        session.execute(
            sa.delete(KbAcl).where(KbAcl.collection == collection, KbAcl.doc_id.in_(ids))
        )
        for table in (KbDocMeta, KbDocument):
            session.execute(
                sa.delete(table).where(table.collection == collection, table.doc_id.in_(ids))
            )
        gens = list(
            session.scalars(
                sa.select(KbGeneration).where(
                    KbGeneration.collection == collection, KbGeneration.state != "pruned"
                )
            )
        )
        chunks: dict[str, int] = {}
        for gen in gens:
            _seq, chunks[gen.id] = replace_chunks(session, gen.id, collection, ids)
        record = AuditLog(kb.store).append(
            kind="kb.erase",
            actor=actor,
            subject=collection,
            data={
                "collection": collection,
                "selector": selector,
                "documents": len(ids),
                "doc_id_sha256": [salted_sha256(salt, i) for i in ids],
                "chunks": chunks,
            },
            session=session,
        )
        scrub_decisions(session, ids + ([value] if kind != "where" else []))
        live = [g for g in gens if g.state in ("active", "shadow")]
        session.expunge_all()
    kb.allowed_cache = AllowedCache()
    for gen in live:
        kb.refresh_index(gen)
    kb.save_indexes(collection)
    return EraseReceipt(
        collection,
        selector,
        len(ids),
        chunks,
        record.seq,
        record.id,
        record.at.isoformat(),
        actor,
    )
