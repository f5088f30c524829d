"""The write path: every upsert and delete goes to every live generation, in one transaction.

:func:`apply_writes` is the single function that changes documents: it chunks and embeds
each document once per live generation (``active`` and, during a migration, ``shadow``;
each with its own embedder and chunking), then in one transaction writes the documents,
their ACL and metadata, and per generation replaces their chunks through the one
chunk-write primitive (:func:`daytwo.knowledge.writes.replace_chunks`: bump ``seq``,
tombstone the old chunks, insert the new ones). The keyword index follows in the same
transaction; the ANN indexes catch up from the database right after the commit (and at
the next open after a crash), so a crash anywhere leaves the store consistent.

:func:`ingest_source` is incremental sync on top: content hashes decide what changed,
documents that vanished from the source are deleted, unchanged ones are not touched.
A sync only ever changes its own source's documents (``Source.key``, or the name given
with ``--source``): an id another source already holds in the collection is reported as
skipped, never overwritten, and only the source's own vanished documents are deleted.
A document a source gives its own ACL (an e-mail thread: its people; an internal ticket
comment: the agents) is private with that ACL plus the entries given explicitly.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from daytwo.exceptions import InputError
from daytwo.knowledge.acl import EVERYONE, normalise_acl
from daytwo.knowledge.chunking import ChunkingConfig
from daytwo.knowledge.filters import typed_metadata
from daytwo.knowledge.fts import FTS_INDEX, TERMS_TABLE
from daytwo.knowledge.indexes import Indexes
from daytwo.knowledge.source_types import Skipped, Source, SourceDocument
from daytwo.knowledge.writes import Piece, embed_pieces, replace_chunks
from daytwo.store.base import utcnow
from daytwo.store.tables.knowledge import (
    KbAcl,
    KbDocMeta,
    KbDocument,
    KbGeneration,
)

__all__ = [
    "DocWrite",
    "IngestReport",
    "PreparedWrites",
    "WriteTimings",
    "analyze_grown_tables",
    "apply_writes",
    "commit_writes",
    "content_hash",
    "ingest_source",
    "prepare_writes",
    "refresh_statistics",
]

Progress = Callable[[int, int], None]
# Documents per write transaction, and so per embedding window: the embedder sorts one
# window's chunks by length before batching, and on MS MARCO passages a window of 64
# documents pads to 1.108x the real tokens where 256 pads to 1.036x (16 % fewer ONNX
# calls too). A crash loses at most the batch being written (the next sync redoes it).
BATCH_DOCS = 256


@dataclass(frozen=True)
class DocWrite:
    """One document to upsert."""

    doc_id: str
    text: str
    title: str
    metadata: dict[str, Any]
    acl: list[str]
    private: bool
    source: str
    content_hash: str


@dataclass
class WriteTimings:
    """Where the time of the writes went."""

    chunks: int = 0
    embed_seconds: float = 0.0
    index_seconds: float = 0.0


@dataclass
class IngestReport:
    """What an ingest did: counts, per-item skip reasons, throughput split."""

    collection: str
    source: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    chunks: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    index_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (CLI ``--json``)."""
        return {
            "collection": self.collection,
            "source": self.source,
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "skipped": [{"item": s.item, "reason": s.reason} for s in self.skipped],
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "embed_seconds": round(self.embed_seconds, 3),
            "index_seconds": round(self.index_seconds, 3),
            "chunks_per_second": round(self.chunks / self.seconds, 1) if self.seconds else None,
        }


def content_hash(
    title: str, text: str, metadata: dict[str, Any], acl: Sequence[str], private: bool
) -> str:
    """Hash of everything that defines a document's indexed state."""
    payload = json.dumps(
        [title, text, metadata, sorted(acl), private], sort_keys=True, default=str
    ).encode()
    return hashlib.sha256(payload).hexdigest()


@dataclass
class PreparedWrites:
    """Upserts chunked and embedded for some generations, ready to be committed."""

    upserts: Sequence[DocWrite]
    pieces: dict[str, list[Piece]] = field(default_factory=dict)
    """Per generation id: the upserts' chunks with their vectors."""
    embed_seconds: float = 0.0


def prepare_writes(
    kb: Indexes, upserts: Sequence[DocWrite], generations: Sequence[KbGeneration]
) -> PreparedWrites:
    """Chunk and embed ``upserts`` once per generation (no database access: ingest runs
    it on a worker thread while the previous batch is being committed)."""
    prepared = PreparedWrites(upserts)
    _prepare_missing(kb, prepared, generations)
    return prepared


def _prepare_missing(
    kb: Indexes, prepared: PreparedWrites, generations: Sequence[KbGeneration]
) -> None:
    started = time.perf_counter()
    for gen in generations:
        if gen.id in prepared.pieces:
            continue
        pieces = embed_pieces(
            kb.embedder_for(gen),
            ChunkingConfig.from_dict(gen.chunking),
            [(d.doc_id, d.title, d.text) for d in prepared.upserts],
        )
        prepared.pieces[gen.id] = [p for doc in prepared.upserts for p in pieces[doc.doc_id]]
    prepared.embed_seconds += time.perf_counter() - started


def apply_writes(
    kb: Indexes,
    collection: str,
    upserts: Sequence[DocWrite] = (),
    deletes: Sequence[str] = (),
) -> WriteTimings:
    """Write ``upserts`` and ``deletes`` to every live generation of ``collection`` atomically."""
    prepared = prepare_writes(kb, upserts, kb.live_generations(collection))
    return commit_writes(kb, collection, prepared, deletes)


def commit_writes(
    kb: Indexes,
    collection: str,
    prepared: PreparedWrites,
    deletes: Sequence[str] = (),
) -> WriteTimings:
    """Write prepared upserts and ``deletes`` to every live generation atomically.

    The live generations are read again inside the write transaction: a generation that
    went live after :func:`prepare_writes` (a re-index started) is chunked and embedded
    outside it and the transaction is run again (it wrote nothing yet), so no live
    generation misses a write and no embedding runs while the write lock is held; one
    that stopped being live is skipped.
    """
    embed_before = prepared.embed_seconds
    started = time.perf_counter()
    kb.ensure_collection(collection)
    while True:
        try:
            generations = _commit_prepared(kb, collection, prepared, deletes)
            break
        except _NotPrepared as missing:
            _prepare_missing(kb, prepared, missing.generations)
    for gen in generations:
        kb.refresh_index(gen)
    written = sum(len(prepared.pieces[gen.id]) for gen in generations) + len(deletes)
    kb.rows_since_statistics_check += written
    if kb.rows_since_statistics_check >= STATISTICS_CHECK_EVERY:
        kb.rows_since_statistics_check = 0
        analyze_grown_tables(kb)
    late_embed = prepared.embed_seconds - embed_before
    return WriteTimings(
        chunks=sum(len(prepared.pieces[gen.id]) for gen in generations),
        embed_seconds=prepared.embed_seconds,
        index_seconds=time.perf_counter() - started - late_embed,
    )


class _NotPrepared(Exception):
    """A live generation has no prepared pieces: the transaction rolls back (unwritten)."""

    def __init__(self, generations: list[KbGeneration]) -> None:
        super().__init__()
        self.generations = generations


def _commit_prepared(
    kb: Indexes, collection: str, prepared: PreparedWrites, deletes: Sequence[str]
) -> list[KbGeneration]:
    upserts = prepared.upserts
    doc_ids = [d.doc_id for d in upserts] + list(deletes)
    now = utcnow()
    with kb.store.session(write=True) as session:
        generations = kb.live_generations(collection, session)
        if any(gen.id not in prepared.pieces for gen in generations):
            session.expunge_all()
            raise _NotPrepared(generations)
        if doc_ids:
            for table in (KbAcl, KbDocMeta):
                session.execute(
                    sa.delete(table).where(
                        table.collection == collection, table.doc_id.in_(doc_ids)
                    )
                )
        if deletes:
            session.execute(
                sa.delete(KbDocument).where(
                    KbDocument.collection == collection, KbDocument.doc_id.in_(list(deletes))
                )
            )
        existing = {
            d.doc_id: d
            for d in session.scalars(
                sa.select(KbDocument).where(
                    KbDocument.collection == collection,
                    KbDocument.doc_id.in_([d.doc_id for d in upserts]),
                )
            )
        }
        for doc in upserts:
            row = existing.get(doc.doc_id)
            if row is None:
                row = KbDocument(collection=collection, doc_id=doc.doc_id, created_at=now)
                session.add(row)
            row.title, row.text, row.meta = doc.title, doc.text, doc.metadata
            row.source, row.private, row.content_hash = doc.source, doc.private, doc.content_hash
            row.updated_at = now
            row.tenant = row.tenant or "default"
            session.add_all(
                KbAcl(collection=collection, doc_id=doc.doc_id, entry=e) for e in doc.acl
            )
            session.add_all(
                KbDocMeta(
                    collection=collection,
                    doc_id=doc.doc_id,
                    key=k,
                    value=v.text,
                    kind=v.kind,
                    num=v.num,
                )
                for k, v in typed_metadata(doc.metadata).items()
            )
        session.flush()
        for gen in generations:
            replace_chunks(session, gen.id, collection, doc_ids, prepared.pieces[gen.id])
    return generations


def ingest_source(
    kb: Indexes,
    source: Source,
    collection: str,
    *,
    acl: Sequence[str],
    private: bool,
    progress: Progress | None = None,
    read_progress: Callable[[str, float, float], None] | None = None,
) -> IngestReport:
    """Incremental sync of ``source`` into ``collection`` (see the module docstring).

    ``progress(done, total)`` counts the documents written; ``read_progress(item, done,
    total)`` reports a long item being read (seconds of a recording transcribed).
    """
    started = time.perf_counter()
    report = IngestReport(collection=collection, source=source.key)
    docs: dict[str, SourceDocument] = {}
    source.reuse = _derived_lookup(kb, collection, source.key)
    source.read_progress = read_progress
    for item in source.read():
        if isinstance(item, Skipped):
            report.skipped.append(item)
        elif item.doc_id in docs:
            report.skipped.append(Skipped(item.doc_id, "duplicate id (the first one was kept)"))
        elif not item.text.strip():
            report.skipped.append(Skipped(item.doc_id, "empty text"))
        else:
            docs[item.doc_id] = item
    kb.ensure_collection(collection)
    with kb.store.session() as session:
        known = {
            doc_id: (digest, src)
            for doc_id, digest, src in session.execute(
                sa.select(KbDocument.doc_id, KbDocument.content_hash, KbDocument.source).where(
                    KbDocument.collection == collection
                )
            )
        }
    writes: list[DocWrite] = []
    # Entries given explicitly (not the default group:everyone) are added to a document's
    # own ACL; the default never widens it (an e-mail thread stays its people's).
    explicit = [e for e in acl if e != EVERYONE]
    for doc in docs.values():
        doc_acl, doc_private = list(acl), private
        if doc.acl is not None:
            try:
                doc_acl, doc_private = normalise_acl([*doc.acl, *explicit]), True
            except InputError as exc:
                report.skipped.append(Skipped(doc.doc_id, f"bad ACL from the source: {exc}"))
                continue
        digest = content_hash(doc.title, doc.text, doc.metadata, doc_acl, doc_private)
        previous = known.get(doc.doc_id)
        if previous is not None and previous[1] != source.key:
            # Another source's document: a sync never overwrites it (nor deletes it).
            report.skipped.append(
                Skipped(
                    doc.doc_id,
                    f"id belongs to source {previous[1]!r} in this collection; not overwritten "
                    "(give this document another id, or sync or delete it through that source)",
                )
            )
            continue
        if previous is not None and previous[0] == digest and previous[1] == source.key:
            report.unchanged += 1
            continue
        if previous is None:
            report.added += 1
        else:
            report.updated += 1
        writes.append(
            DocWrite(
                doc.doc_id,
                doc.text,
                doc.title,
                doc.metadata,
                doc_acl,
                doc_private,
                source.key,
                digest,
            )
        )
    skipped_items = {s.item for s in report.skipped}
    vanished = sorted(
        doc_id
        for doc_id, (_digest, src) in known.items()
        if src == source.key and doc_id not in docs and doc_id not in skipped_items
    )
    total = len(writes) + (1 if vanished else 0)
    done = 0
    if progress:
        progress(0, total)
    batches = [writes[i : i + BATCH_DOCS] for i in range(0, len(writes), BATCH_DOCS)]
    if batches:
        # One worker chunks and embeds batch i+1 while batch i is committed (onnxruntime
        # releases the GIL); the commit re-checks the live generations itself.
        # A crash or Ctrl-C loses at most the batch being committed; the worker finishes
        # the batch it is embedding before the exception leaves (nothing runs on after).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-embed") as pool:
            live = kb.live_generations(collection)
            pending = pool.submit(prepare_writes, kb, batches[0], live)
            try:
                for i, batch in enumerate(batches):
                    prepared = pending.result()
                    if i + 1 < len(batches):
                        live = kb.live_generations(collection)
                        pending = pool.submit(prepare_writes, kb, batches[i + 1], live)
                    timings = commit_writes(kb, collection, prepared)
                    report.chunks += timings.chunks
                    report.embed_seconds += timings.embed_seconds
                    report.index_seconds += timings.index_seconds
                    done += len(batch)
                    if progress:
                        progress(done, total)
            finally:
                pending.cancel()
    if vanished:
        timings = apply_writes(kb, collection, deletes=vanished)
        report.index_seconds += timings.index_seconds
        report.deleted = len(vanished)
        if progress:
            progress(total, total)
    if len(writes) + len(vanished) >= ANALYZE_AFTER:
        refresh_statistics(kb)
    kb.save_indexes(collection)
    report.seconds = time.perf_counter() - started
    return report


def _derived_lookup(
    kb: Indexes, collection: str, source_key: str
) -> Callable[[str, str], list[SourceDocument]]:
    """(blob path, SHA-256) → the source's documents derived from that file before."""

    def lookup(blob_path: str, sha256: str) -> list[SourceDocument]:
        with kb.store.session() as session:
            ids = sa.select(KbDocMeta.doc_id).where(
                KbDocMeta.collection == collection,
                KbDocMeta.key == "blob_sha256",
                KbDocMeta.value == sha256,
            )
            rows = session.scalars(
                sa.select(KbDocument)
                .where(
                    KbDocument.collection == collection,
                    KbDocument.source == source_key,
                    KbDocument.doc_id.in_(ids),
                )
                .order_by(KbDocument.doc_id)
            ).all()
            return [
                SourceDocument(r.doc_id, r.text, r.title, dict(r.meta))
                for r in rows
                if r.meta.get("blob_path") == blob_path
            ]

    return lookup


ANALYZE_AFTER = 200
"""Documents written by one sync after which PostgreSQL's planner statistics are refreshed."""


STATISTICS_CHECK_EVERY = 1000
"""Chunks written between two looks at whether the knowledge tables outgrew their planner
statistics (one small query on PostgreSQL)."""
STATISTICS_MIN_PAGES = 64
"""Pages (8 kB) below which the write path analyzes a table only once (when it has no
statistics at all): scanning it all is cheap, but a plan made without any statistics is
not (a search's ACL test then read the ACL of a 2,000-document collection once per chunk,
47 ms; analyzing it takes about 1 ms)."""
STATISTICS_GROWTH = 1.5
"""Growth since its last analyze after which the write path analyzes a table again."""
# The columns the write path looks rows up by (the ids of a batch's documents, in a
# collection and generation), and the ACL entries searches look documents up by: what
# the planner must know to probe the indexes with them.
_KEY_COLUMNS = {
    "kb_chunks": "generation, collection, doc_id",
    "kb_acl": "collection, doc_id, entry",
    "kb_doc_meta": "collection, doc_id",
    "kb_documents": "collection, doc_id",
}
# relpages is the size at the last analyze (0 before the first); the file's size is now's;
# reltuples is -1 until the table was first analyzed (or vacuumed).
_GROWN = (
    "SELECT relname FROM pg_class WHERE oid = ANY(ARRAY[{tables}]) "
    "AND (reltuples < 0 OR pg_relation_size(oid) / current_setting('block_size')::int "
    ">= greatest(%(floor)s, %(growth)s * relpages))"
)


def analyze_grown_tables(kb: Indexes) -> list[str]:
    """``ANALYZE`` the key columns of the knowledge tables that were never analyzed or grew
    by half since their last analyze, on PostgreSQL (a no-op on SQLite); return the tables
    analyzed.

    Each write looks its batch's documents up by id (their old chunks, ACL entries and
    metadata). Without statistics the planner takes ``(generation, collection)``, the
    prefix of ``ix_kb_chunks_doc``, for a few rows and matches the ids as a filter over
    every chunk of the generation instead of probing the index with them: each write
    costs time linear in the collection, a sync into a new collection time quadratic in
    its size (0.6 s of a 256-document batch at 20,000 chunks). Autovacuum, when it runs
    at all, analyzes too late for a sync that fills a table in minutes. Analyzing only
    the key columns (0.35 s vs 1.3 s for the whole of ``kb_chunks`` at 20,000 chunks)
    each time a table grew by half costs a logarithmic number of sampled runs;
    :func:`refresh_statistics` analyzes every column at the end of a sync.
    """
    if kb.store.is_sqlite:
        return []
    tables = ", ".join(f"to_regclass('{t}')" for t in _KEY_COLUMNS)
    with kb.store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        grown = [
            str(name)
            for name in conn.exec_driver_sql(
                _GROWN.format(tables=tables),
                {"floor": STATISTICS_MIN_PAGES, "growth": STATISTICS_GROWTH},
            ).scalars()
        ]
        for table in grown:
            conn.exec_driver_sql(f"ANALYZE {table} ({_KEY_COLUMNS[table]})")
    return grown


def refresh_statistics(kb: Indexes) -> None:
    """``ANALYZE`` the knowledge tables on PostgreSQL (a no-op on SQLite).

    Autovacuum analyzes a table only after a share of it changed and some time passed;
    straight after a bulk ingest the planner would still believe the tables empty and
    compute keyword matches row by row (seconds per query on 5,000 documents). The GIN
    index's pending list (where fast updates land until VACUUM merges them) is merged
    too: a search scans that list linearly, 10 ms of a 10.3 ms keyword lookup on 5,000
    freshly ingested chunks (0.3 ms once merged).
    """
    if kb.store.is_sqlite:
        return
    with kb.store.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("ANALYZE kb_chunks, kb_acl, kb_doc_meta, kb_documents")
        # the keyword postings: statistics, and the visibility map for index-only reads
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {TERMS_TABLE}")
        conn.exec_driver_sql(f"SELECT gin_clean_pending_list('{FTS_INDEX}'::regclass)")
