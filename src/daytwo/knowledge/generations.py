"""Zero-downtime re-indexing: shadow generations, backfill, shadow reads, canary, cutover.

A migration moves a collection from its active generation to a new one (another
embedder, chunking or ANN parameters) while it keeps serving:

1. :func:`start_migration` creates the *shadow* generation. From then on every upsert
   and delete reaches both generations (the write path of :mod:`daytwo.knowledge.ingest`
   writes to every live generation).
2. :func:`backfill` fills the shadow from the system of record (``kb_documents``) in
   document-id order. Each batch's chunks and the migration's ``checkpoint`` commit in
   one transaction, so after a crash or ``kill -9`` the rerun continues after the last
   committed batch: no duplicate and no missing chunk. Documents the dual write has
   already put into the shadow are skipped; a final sweep re-writes the documents
   changed since the migration began and any still missing (writes that were in flight
   when the shadow appeared).
3. :func:`daytwo.knowledge.shadow_reads.routed_search` (the search path) runs a sampled
   share of live queries on the shadow too, recording overlap@10 and both latencies,
   and serves a canary percentage of queries from the shadow once it is complete.
4. :func:`cutover` swaps the active pointer in one transaction; the old generation
   stays live (still dual-written) so :func:`rollback` is one switch back, without loss.
5. :func:`prune` deletes the generation that lost (chunks, tombstones, index files).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.exceptions import ConflictError, InputError, NotFoundError, StoreError
from daytwo.knowledge.ann import AnnParams
from daytwo.knowledge.chunking import ChunkingConfig
from daytwo.knowledge.embedders import get_embedder
from daytwo.knowledge.indexes import Indexes
from daytwo.knowledge.writes import Piece, bump_seq, embed_pieces, replace_chunks, write_chunks
from daytwo.store import new_id, utcnow
from daytwo.store.analyzers import check_analyzer
from daytwo.store.tables.knowledge import (
    KbChunk,
    KbCollection,
    KbDocument,
    KbGeneration,
    KbTombstone,
)
from daytwo.store.tables.knowledge_maintenance import (
    KbIndexMaintenance,
    KbMigration,
)

__all__ = [
    "OPEN_STATES",
    "MigrationStatus",
    "backfill",
    "cutover",
    "open_migration",
    "parse_chunking",
    "prune",
    "rollback",
    "start_migration",
    "write_lock",
]

OPEN_STATES = ("backfilling", "ready", "cut_over", "rolled_back")
"""States of a migration that is not finished (at most one per collection)."""
SWEEP_MARGIN_SECONDS = 120.0
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class MigrationStatus:
    """A migration as the CLI and the API show it."""

    id: str
    collection: str
    source_generation: str
    target_generation: str
    state: str
    done: int
    total: int
    checkpoint: str | None
    shadow_read_rate: float
    canary_percent: float

    @classmethod
    def of(cls, row: KbMigration) -> MigrationStatus:
        """From the table row."""
        return cls(
            row.id,
            row.collection,
            row.source_generation,
            row.target_generation,
            row.state,
            row.done,
            row.total,
            row.checkpoint,
            row.shadow_read_rate,
            row.canary_percent,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "collection": self.collection,
            "source_generation": self.source_generation,
            "target_generation": self.target_generation,
            "state": self.state,
            "progress": {"done": self.done, "total": self.total},
            "shadow_read_rate": self.shadow_read_rate,
            "canary_percent": self.canary_percent,
        }


def parse_chunking(spec: str | None, base: Mapping[str, Any]) -> ChunkingConfig:
    """``size=256,overlap=32`` on top of ``base`` (InputError naming the bad part)."""
    values = dict(base)
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in {"size", "overlap"}:
            raise InputError(
                f"chunking setting {part.strip()!r} is not size=N or overlap=N",
                hint="for example --chunking size=256,overlap=32",
            )
        try:
            values[key] = int(raw)
        except ValueError:
            raise InputError(
                f"chunking {key} {raw.strip()!r} is not a whole number",
                hint="for example --chunking size=256,overlap=32",
            ) from None
    return ChunkingConfig.from_dict(values)


def _check_rates(shadow_read_rate: float | None, canary_percent: float | None) -> None:
    if shadow_read_rate is not None and not 0.0 <= shadow_read_rate <= 1.0:
        raise InputError(
            f"shadow-read rate {shadow_read_rate} is outside 0..1", hint="for example 0.1"
        )
    if canary_percent is not None and not 0.0 <= canary_percent <= 100.0:
        raise InputError(f"canary {canary_percent}% is outside 0..100", hint="for example 5")


def write_lock(session: Session, collection: str) -> None:
    """Take the write lock first (SQLite: before any read of the transaction, so a
    concurrent commit cannot turn the later write into ``database is locked``;
    PostgreSQL: the collection row's lock serialises migrations of one collection)."""
    session.execute(
        sa.update(KbCollection)
        .where(KbCollection.name == collection)
        .values(tenant=KbCollection.tenant)
    )


def open_migration(session: Session, collection: str) -> KbMigration | None:
    """The unfinished migration of ``collection``, if any."""
    return session.scalars(
        sa.select(KbMigration)
        .where(KbMigration.collection == collection, KbMigration.state.in_(OPEN_STATES))
        .order_by(KbMigration.created_at.desc())
        .limit(1)
    ).first()


def _require_open(session: Session, collection: str) -> KbMigration:
    if session.get(KbCollection, collection) is None:
        raise NotFoundError(f"collection {collection!r} does not exist", hint="see daytwo kb stats")
    mig = open_migration(session, collection)
    if mig is None:
        raise NotFoundError(
            f"collection {collection!r} has no migration in progress",
            hint=f"start one: daytwo kb migrate --collection {collection} --embedder NAME",
        )
    return mig


def start_migration(
    kb: Indexes,
    collection: str,
    embedder: str,
    *,
    chunking: ChunkingConfig | None = None,
    ann_params: AnnParams | None = None,
    shadow_read_rate: float | None = None,
    canary_percent: float | None = None,
    actor: str = "cli",
    analyzer: str | None = None,
) -> MigrationStatus:
    """Create the shadow generation, or return the unfinished migration to the same target
    (to resume its backfill, or to change its shadow-read rate and canary percentage).

    Raises before changing anything: NotFoundError for an unknown collection,
    ConfigError for an unknown embedder, ConflictError when another migration of the
    collection is unfinished, InputError when the target equals the active generation or
    names an unknown ``analyzer`` (the keyword index's; default: the active one's).
    """
    _check_rates(shadow_read_rate, canary_percent)
    active = kb.active_generation(collection)
    target_analyzer = active.analyzer if analyzer is None else check_analyzer(analyzer)
    target_embedder = get_embedder(embedder)  # ConfigError for an unknown name
    config = chunking or ChunkingConfig.from_dict(active.chunking)
    params = ann_params or AnnParams.from_dict(active.ann_params)
    with kb.store.session(write=True) as session:
        write_lock(session, collection)
        mig = open_migration(session, collection)
        if mig is not None:
            target = session.get(KbGeneration, mig.target_generation)
            same = (
                target is not None
                and target.embedder == target_embedder.name
                and target.chunking == config.to_dict()
                and target.ann_params == params.to_dict()
                and target.analyzer == target_analyzer
            )
            if not same:
                raise ConflictError(
                    f"collection {collection!r} already has a migration in progress "
                    f"({mig.id}, {mig.state})",
                    hint="finish it first: daytwo kb cutover, daytwo kb rollback, "
                    "daytwo kb generations prune",
                )
            if shadow_read_rate is not None:
                mig.shadow_read_rate = shadow_read_rate
            if canary_percent is not None:
                mig.canary_percent = canary_percent
            return MigrationStatus.of(mig)
    if (
        target_embedder.name == active.embedder
        and config.to_dict() == active.chunking
        and params.to_dict() == active.ann_params
        and target_analyzer == active.analyzer
    ):
        raise InputError(
            f"collection {collection!r} already uses {embedder} with these settings",
            hint="choose another --embedder, --chunking or --analyzer",
        )
    dim = target_embedder.dim  # may ask a remote endpoint: before the transaction
    with kb.store.session(write=True) as session:
        write_lock(session, collection)
        row = session.get(KbCollection, collection, with_for_update=True)
        if row is None or row.active_generation != active.id:
            raise ConflictError(
                f"collection {collection!r} changed while the migration was being set up",
                hint="run the command again",
            )
        if open_migration(session, collection) is not None:
            raise ConflictError(
                f"collection {collection!r} already has a migration in progress",
                hint="finish it first: daytwo kb cutover, daytwo kb rollback, "
                "daytwo kb generations prune",
            )
        now = utcnow()
        gen = KbGeneration(
            id=f"g{new_id()[:15]}",
            collection=collection,
            embedder=target_embedder.name,
            embedder_version=target_embedder.version,
            dim=dim,
            chunking=config.to_dict(),
            ann_params=params.to_dict(),
            analyzer=target_analyzer,
            state="shadow",
            seq=0,
            created_at=now,
        )
        total = int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(KbDocument)
                .where(KbDocument.collection == collection)
            )
            or 0
        )
        mig = KbMigration(
            id=new_id(),
            collection=collection,
            source_generation=active.id,
            target_generation=gen.id,
            state="backfilling",
            checkpoint=None,
            done=0,
            total=total,
            shadow_read_rate=0.1 if shadow_read_rate is None else shadow_read_rate,
            canary_percent=0.0 if canary_percent is None else canary_percent,
            actor=actor,
            created_at=now,
            updated_at=now,
        )
        session.add_all([gen, mig])
        session.flush()
        return MigrationStatus.of(mig)


# -- backfill -------------------------------------------------------------------------
@dataclass(frozen=True)
class _DocRow:
    doc_id: str
    title: str
    text: str
    content_hash: str


def _embed_docs(kb: Indexes, gen: KbGeneration, docs: Sequence[_DocRow]) -> dict[str, list[Piece]]:
    return embed_pieces(
        kb.embedder_for(gen),
        ChunkingConfig.from_dict(gen.chunking),
        [(d.doc_id, d.title, d.text) for d in docs],
    )


def _locked_docs(
    session: Session, collection: str, ids: Sequence[str], *, lock: bool = True
) -> dict[str, _DocRow]:
    query = sa.select(
        KbDocument.doc_id, KbDocument.title, KbDocument.text, KbDocument.content_hash
    ).where(KbDocument.collection == collection, KbDocument.doc_id.in_(list(ids)))
    rows = session.execute(query.with_for_update() if lock else query)
    return {r.doc_id: _DocRow(r.doc_id, r.title, r.text, r.content_hash) for r in rows}


class _Changed(Exception):
    """Documents changed since they were embedded: the write transaction rolls back, they
    are embedded again outside it (no embedding runs while the write lock is held)."""

    def __init__(self, docs: list[_DocRow]) -> None:
        super().__init__()
        self.docs = docs


@dataclass
class _Embedded:
    """Documents' pieces, by doc id, with the content hash they were embedded from."""

    pieces: dict[str, list[Piece]]
    hashes: dict[str, str]

    def add(self, kb: Indexes, gen: KbGeneration, docs: Sequence[_DocRow]) -> None:
        if docs:
            self.pieces.update(_embed_docs(kb, gen, docs))
            self.hashes.update({d.doc_id: d.content_hash for d in docs})

    def stale(self, current: Mapping[str, _DocRow]) -> list[_DocRow]:
        return [d for d in current.values() if self.hashes.get(d.doc_id) != d.content_hash]


def _shadow_has(session: Session, gen: KbGeneration, ids: Sequence[str]) -> set[str]:
    return set(
        session.scalars(
            sa.select(KbChunk.doc_id)
            .where(
                KbChunk.generation == gen.id,
                KbChunk.collection == gen.collection,
                KbChunk.doc_id.in_(list(ids)),
            )
            .distinct()
        )
    )


def _migration_gen(kb: Indexes, migration_id: str) -> tuple[KbMigration, KbGeneration]:
    with kb.store.session() as session:
        mig = session.get(KbMigration, migration_id)
        if mig is None:
            raise NotFoundError(f"migration {migration_id!r} does not exist")
        gen = session.get(KbGeneration, mig.target_generation)
        if gen is None:
            raise StoreError(f"generation {mig.target_generation} of migration {mig.id} is gone")
        session.expunge_all()
        return mig, gen


def backfill(
    kb: Indexes,
    migration_id: str,
    *,
    batch_size: int = 32,
    progress: Progress | None = None,
    max_batches: int | None = None,
) -> MigrationStatus:
    """Fill the shadow generation from the documents; resumable (see the module docstring).

    ``max_batches`` stops early (for tests of resumption); the state stays ``backfilling``.
    """
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1", hint="for example 32")
    mig, gen = _migration_gen(kb, migration_id)
    batches = 0
    while mig.state == "backfilling":
        if max_batches is not None and batches >= max_batches:
            break
        with kb.store.session() as session:
            stmt = (
                sa.select(
                    KbDocument.doc_id, KbDocument.title, KbDocument.text, KbDocument.content_hash
                )
                .where(KbDocument.collection == gen.collection)
                .order_by(KbDocument.doc_id)
                .limit(batch_size)
            )
            if mig.checkpoint is not None:
                stmt = stmt.where(KbDocument.doc_id > mig.checkpoint)
            docs = [_DocRow(r[0], r[1], r[2], r[3]) for r in session.execute(stmt)]
        if not docs:
            _final_sweep(kb, mig, gen)
            break
        embedded = _Embedded({}, {})
        embedded.add(kb, gen, docs)
        while True:
            try:
                mig = _write_batch(kb, gen, mig, docs, embedded)
                break
            except _Changed as changed:
                embedded.add(kb, gen, changed.docs)
        kb.refresh_index(gen)
        batches += 1
        if progress:
            progress(mig.done, mig.total)
    mig, gen = _migration_gen(kb, migration_id)
    if mig.state != "backfilling":
        kb.save_indexes(gen.collection)
        if progress:
            progress(mig.total, mig.total)
    return MigrationStatus.of(mig)


def _write_batch(
    kb: Indexes, gen: KbGeneration, mig: KbMigration, docs: Sequence[_DocRow], embedded: _Embedded
) -> KbMigration:
    """Write one backfill batch's embedded pieces and advance the checkpoint (_Changed,
    rolled back, when a document changed since it was embedded)."""
    with kb.store.session(write=True) as session:
        # Write first: takes the SQLite write lock before any read of this transaction.
        seq = bump_seq(session, gen.id)
        row = session.get(KbMigration, mig.id, with_for_update=True)
        if row is None or row.state != "backfilling" or row.checkpoint != mig.checkpoint:
            raise ConflictError(
                f"migration {mig.id} is being backfilled by another process",
                hint="let that one finish, or rerun later",
            )
        current = _locked_docs(session, gen.collection, [d.doc_id for d in docs])
        present = _shadow_has(session, gen, [d.doc_id for d in docs])
        todo = {d.doc_id: current[d.doc_id] for d in docs if d.doc_id in current}
        for doc_id in present:  # already dual-written
            todo.pop(doc_id, None)
        stale = embedded.stale(todo)
        if stale:
            raise _Changed(stale)
        for doc_id in todo:
            write_chunks(session, gen.id, gen.collection, seq, embedded.pieces[doc_id])
        row.checkpoint = docs[-1].doc_id
        row.done += sum(1 for d in docs if d.doc_id in current)
        row.total = row.done + int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(KbDocument)
                .where(
                    KbDocument.collection == gen.collection,
                    KbDocument.doc_id > row.checkpoint,
                )
            )
            or 0
        )
        row.updated_at = utcnow()
        session.flush()
        session.expunge(row)
        return row


def _final_sweep(kb: Indexes, mig: KbMigration, gen: KbGeneration) -> None:
    """Re-write documents changed since the migration began or missing in the shadow."""
    since = mig.created_at.timestamp() - SWEEP_MARGIN_SECONDS
    with kb.store.session() as session:
        recent = [
            doc_id
            for doc_id, updated in session.execute(
                sa.select(KbDocument.doc_id, KbDocument.updated_at).where(
                    KbDocument.collection == gen.collection
                )
            )
            if updated.timestamp() >= since
        ]
        covered = sa.select(KbChunk.doc_id).where(
            KbChunk.generation == gen.id, KbChunk.collection == gen.collection
        )
        missing = list(
            session.scalars(
                sa.select(KbDocument.doc_id).where(
                    KbDocument.collection == gen.collection, KbDocument.doc_id.not_in(covered)
                )
            )
        )
    todo = sorted(set(recent) | set(missing))
    for start in range(0, len(todo), 64):
        ids = todo[start : start + 64]
        embedded = _Embedded({}, {})
        with kb.store.session() as session:
            embedded.add(
                kb, gen, list(_locked_docs(session, gen.collection, ids, lock=False).values())
            )
        while True:
            try:
                _sweep_batch(kb, gen, ids, embedded)
                break
            except _Changed as changed:
                embedded.add(kb, gen, changed.docs)
    with kb.store.session(write=True) as session:
        write_lock(session, gen.collection)
        row = session.get(KbMigration, mig.id, with_for_update=True)
        if row is not None and row.state == "backfilling":
            row.state = "ready"
            # The documents the collection holds now (the per-batch counts also counted
            # documents deleted or written twice while the backfill ran: 305/305 for 300).
            row.total = row.done = int(
                session.scalar(
                    sa.select(sa.func.count())
                    .select_from(KbDocument)
                    .where(KbDocument.collection == gen.collection)
                )
                or 0
            )
            row.updated_at = utcnow()
    kb.refresh_index(gen)


def _sweep_batch(kb: Indexes, gen: KbGeneration, ids: Sequence[str], embedded: _Embedded) -> None:
    with kb.store.session(write=True) as session:
        bump_seq(session, gen.id)
        current = _locked_docs(session, gen.collection, ids)
        stale = embedded.stale(current)
        if stale:
            raise _Changed(stale)
        if current:
            pieces = [p for doc_id in current for p in embedded.pieces[doc_id]]
            replace_chunks(session, gen.id, gen.collection, list(current), pieces)


# -- cutover, rollback, prune --------------------------------------------------------------
def _audit(kb: Indexes, session: Session, kind: str, actor: str, data: dict[str, Any]) -> None:
    from daytwo.tracing.audit import AuditLog

    AuditLog(kb.store).append(
        kind=kind, actor=actor, subject=str(data.get("collection")), data=data, session=session
    )


def cutover(kb: Indexes, collection: str, *, actor: str = "cli") -> MigrationStatus:
    """Make the shadow generation active in one transaction (the old one stays live)."""
    with kb.store.session(write=True) as session:
        write_lock(session, collection)
        row = session.get(KbCollection, collection, with_for_update=True)
        mig = _require_open(session, collection)
        if mig.state == "backfilling":
            raise ConflictError(
                f"the backfill of {collection!r} is at {mig.done}/{mig.total} documents; "
                "cutover needs it complete",
                hint=f"finish it: daytwo kb migrate --collection {collection} --embedder ...",
            )
        if mig.state == "cut_over":
            raise ConflictError(
                f"collection {collection!r} is already cut over to {mig.target_generation}",
                hint="daytwo kb rollback switches back; daytwo kb generations prune finishes",
            )
        _switch(session, row, mig, to=mig.target_generation, away=mig.source_generation)
        mig.state = "cut_over"
        mig.updated_at = utcnow()
        _audit(kb, session, "kb.cutover", actor, _mig_data(mig))
        session.flush()
        return MigrationStatus.of(mig)


def rollback(kb: Indexes, collection: str, *, actor: str = "cli") -> MigrationStatus:
    """Switch back to the previous generation (the new one stays as the shadow)."""
    with kb.store.session(write=True) as session:
        write_lock(session, collection)
        row = session.get(KbCollection, collection, with_for_update=True)
        mig = _require_open(session, collection)
        if mig.state != "cut_over":
            raise ConflictError(
                f"collection {collection!r} is not cut over (migration state {mig.state})",
                hint="rollback undoes a cutover; there is nothing to switch back",
            )
        _switch(session, row, mig, to=mig.source_generation, away=mig.target_generation)
        mig.state = "rolled_back"
        mig.updated_at = utcnow()
        _audit(kb, session, "kb.rollback", actor, _mig_data(mig))
        session.flush()
        return MigrationStatus.of(mig)


def _mig_data(mig: KbMigration) -> dict[str, Any]:
    return {
        "collection": mig.collection,
        "migration": mig.id,
        "source_generation": mig.source_generation,
        "target_generation": mig.target_generation,
        "state": mig.state,
    }


def _switch(
    session: Session, row: KbCollection | None, mig: KbMigration, *, to: str, away: str
) -> None:
    if row is None:
        raise NotFoundError(f"collection {mig.collection!r} does not exist")
    new = session.get(KbGeneration, to, with_for_update=True)
    old = session.get(KbGeneration, away, with_for_update=True)
    if new is None or old is None:
        raise StoreError(f"a generation of migration {mig.id} is missing")
    row.active_generation = new.id
    new.state = "active"
    old.state = "shadow"


def prune(
    kb: Indexes, collection: str | None = None, *, actor: str = "cli"
) -> list[dict[str, Any]]:
    """Finish cut-over (or rolled-back) migrations: delete the losing generation.

    Also removes the index directories of generations pruned earlier (a crash between
    the commit and the file removal is completed by the rerun).
    """
    pruned: list[dict[str, Any]] = []
    with kb.store.session() as session:
        q = sa.select(KbMigration).where(KbMigration.state.in_(("cut_over", "rolled_back")))
        if collection is not None:
            if session.get(KbCollection, collection) is None:
                raise NotFoundError(
                    f"collection {collection!r} does not exist", hint="see daytwo kb stats"
                )
            q = q.where(KbMigration.collection == collection)
        todo = [(m.id, m.state, m.collection) for m in session.scalars(q)]
    for mig_id, state, coll in todo:
        with kb.store.session(write=True) as session:
            write_lock(session, coll)
            mig = session.get(KbMigration, mig_id, with_for_update=True)
            if mig is None or mig.state != state:
                continue
            loser = mig.source_generation if state == "cut_over" else mig.target_generation
            gen = session.get(KbGeneration, loser)
            chunks = 0
            if gen is not None:
                chunks = int(
                    session.scalar(
                        sa.select(sa.func.count())
                        .select_from(KbChunk)
                        .where(KbChunk.generation == loser)
                    )
                    or 0
                )
                session.execute(sa.delete(KbChunk).where(KbChunk.generation == loser))
                session.execute(sa.delete(KbTombstone).where(KbTombstone.generation == loser))
                session.execute(
                    sa.delete(KbIndexMaintenance).where(KbIndexMaintenance.generation == loser)
                )
                gen.state = "pruned"
            mig.state = "done" if state == "cut_over" else "abandoned"
            mig.updated_at = utcnow()
            record = {**_mig_data(mig), "pruned_generation": loser, "chunks_deleted": chunks}
            _audit(kb, session, "kb.prune", actor, record)
            pruned.append(record)
    _remove_pruned_files(kb, collection)
    return pruned


def _remove_pruned_files(kb: Indexes, collection: str | None) -> None:
    with kb.store.session() as session:
        q = sa.select(KbGeneration).where(KbGeneration.state.in_(("pruned", "retired")))
        if collection is not None:
            q = q.where(KbGeneration.collection == collection)
        gens = list(session.scalars(q))
        session.expunge_all()
    for gen in gens:
        kb.forget_index(gen.id)
        directory = kb.index_dir(gen)
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=False)
