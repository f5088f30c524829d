"""Search: keyword, vector or hybrid, always as a principal, with a retrieval span.

Both paths enforce the ACL inside the search with the set of chunk keys the principal
may see (computed by SQL and cached per generation ``seq``): the vector search goes on
until it has ``k`` of them, and the keyword search scores only them, with BM25
statistics of that set (:mod:`daytwo.knowledge.bm25`). Metadata filters work the same
way. A search is one read transaction over one snapshot (REPEATABLE READ on
PostgreSQL; a SQLite read transaction is one already): one statement reads the
collection's state (:func:`read_state`), so no cached routing can go stale, and the
permitted set, its cache key (the generation ``seq``) and the rows returned all come
from that snapshot. The statement that reads a hit's text tests the ACL once more, so
a chunk the snapshot does not permit is never returned, whatever the shared in-memory
ANN index holds.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.acl import flatten_metadata, permitted_clause, principal_entries
from daytwo.knowledge.bm25 import Permitted
from daytwo.knowledge.fts import keyword_search
from daytwo.knowledge.fusion import FusionConfig, fuse
from daytwo.knowledge.generations import OPEN_STATES
from daytwo.knowledge.indexes import Indexes
from daytwo.store.tables.knowledge import KbAcl, KbChunk, KbCollection, KbDocMeta, KbGeneration
from daytwo.store.tables.knowledge_maintenance import KbMigration
from daytwo.tracing.content import capture, content_policy

__all__ = [
    "MODES",
    "CollectionState",
    "Hit",
    "Route",
    "SearchRequest",
    "SearchTimings",
    "generation",
    "read_state",
    "run_search",
]

MODES = ("bm25", "dense", "hybrid")
MAX_K = 1000
_tracer = trace.get_tracer("daytwo.knowledge")


@dataclass(frozen=True)
class Hit:
    """One search result: the chunk, its fused score and what each index contributed."""

    doc_id: str
    chunk_id: str
    title: str
    text: str
    score: float
    contributions: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (CLI ``--json``, REST)."""
        return {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "text": self.text,
            "score": self.score,
            "contributions": self.contributions,
        }


@dataclass
class SearchTimings:
    """Time spent embedding the query and searching (for benchmarks)."""

    embed_seconds: float = 0.0
    search_seconds: float = 0.0


@dataclass(frozen=True)
class Route:
    """An unfinished, backfilled migration whose other generation can serve reads."""

    migration: str
    other: str
    shadow_read_rate: float
    canary_percent: float


@dataclass(frozen=True)
class CollectionState:
    """What one search needs to know about its collection, read in one statement:
    the active generation, the fusion, the seq of the generations it may read, and the
    migration route (so a cutover, rollback or fusion change by any process is seen by
    the next search, with no cache to invalidate)."""

    active: str
    fusion: FusionConfig
    seqs: dict[str, int]
    route: Route | None


@functools.cache
def _state_statement() -> sa.Select[Any]:
    coll = KbCollection.__table__.c
    gens = KbGeneration.__table__
    active, other = gens.alias("active"), gens.alias("other")
    mig = KbMigration.__table__.alias("open_migration").c
    open_mig = (
        sa.select(mig.id)
        .where(mig.collection == coll.name, mig.state.in_(OPEN_STATES))
        .order_by(mig.created_at.desc())
        .limit(1)
        .correlate(KbCollection.__table__)
        .scalar_subquery()
    )
    migs = KbMigration.__table__
    other_id = sa.case(
        (coll.active_generation == migs.c.target_generation, migs.c.source_generation),
        else_=migs.c.target_generation,
    )
    return (
        sa.select(
            coll.active_generation,
            coll.fusion,
            active.c.seq,
            migs.c.id,
            migs.c.state,
            migs.c.shadow_read_rate,
            migs.c.canary_percent,
            other.c.id,
            other.c.state,
            other.c.seq,
        )
        .select_from(
            KbCollection.__table__.join(active, active.c.id == coll.active_generation)
            .outerjoin(migs, migs.c.id == open_mig)
            .outerjoin(other, other.c.id == other_id)
        )
        .where(coll.name == sa.bindparam("collection"))
    )


def _chunk_rows(
    session: Session,
    pks: list[int],
    collection: str,
    entries: Sequence[str],
    filters: Mapping[str, Any] | None,
) -> list[Sequence[Any]]:
    """(pk, doc_id, chunk_id, title, text) of the given chunks that are visible with
    ``entries`` and ``filters`` (any order).

    The ACL (and the filters) are tested again against the rows just read, in the same
    snapshot: whatever the index handed over (an ANN index shared by concurrent
    searches, a cached permitted set), no text leaves without this check. Keyed by
    (collection, doc_id) rather than a correlated EXISTS, which PostgreSQL plans as a
    scan of the collection's ACL per chunk when its statistics lag: two small statements
    on SQLite, one with an uncorrelated semi-join on PostgreSQL (a round trip saved).
    """
    if not pks or not entries:
        return []
    connection = session.connection()
    rows: list[Sequence[Any]]
    if connection.dialect.name == "sqlite":  # hot path: one bind, no statement expansion
        cursor = connection.connection.cursor()
        try:
            cursor.execute(
                "SELECT id, doc_id, chunk_id, title, text FROM kb_chunks "
                "WHERE id IN (SELECT value FROM json_each(?)) AND collection = ?",
                (json.dumps(pks), collection),
            )
            rows = list(cursor.fetchall())
        finally:
            cursor.close()
    else:  # one round trip; arrays rather than expanded IN lists (one statement text)
        rows = list(
            connection.exec_driver_sql(
                _PG_VISIBLE_ROWS, {"pks": pks, "c": collection, "entries": list(entries)}
            ).all()
        )
        return _meta_filtered(connection, collection, rows, {str(r[1]) for r in rows}, filters)
    docs = sorted({str(r[1]) for r in rows})
    if not docs:
        return []
    acl = KbAcl.__table__.c
    visible = set(
        connection.execute(
            sa.select(acl.doc_id)
            .where(
                acl.collection == collection,
                acl.doc_id.in_(docs),
                acl.entry.in_(list(entries)),
            )
            .distinct()
        ).scalars()
    )
    return _meta_filtered(connection, collection, rows, visible, filters)


# The rows and their ACL test in one statement: the ACL rows are looked up for the doc
# ids of the given chunks (an uncorrelated semi-join, planned as a hash of a few rows).
_PG_VISIBLE_ROWS = (
    "SELECT c.id, c.doc_id, c.chunk_id, c.title, c.text FROM kb_chunks AS c "
    "WHERE c.id = ANY(%(pks)s) AND c.collection = %(c)s AND c.doc_id IN ("
    "SELECT a.doc_id FROM kb_acl AS a WHERE a.collection = %(c)s "
    "AND a.entry = ANY(%(entries)s) AND a.doc_id IN ("
    "SELECT d.doc_id FROM kb_chunks AS d WHERE d.id = ANY(%(pks)s)))"
)


def _meta_filtered(
    connection: sa.Connection,
    collection: str,
    rows: list[Sequence[Any]],
    visible: set[str],
    filters: Mapping[str, Any] | None,
) -> list[Sequence[Any]]:
    """``rows`` of the ``visible`` documents that match the metadata ``filters``."""
    meta = KbDocMeta.__table__.c
    for key, value in flatten_metadata(filters or {}).items():
        if not visible:
            break
        visible &= set(
            connection.execute(
                sa.select(meta.doc_id).where(
                    meta.collection == collection,
                    meta.doc_id.in_(sorted(visible)),
                    meta.key == key,
                    meta.value == value,
                )
            ).scalars()
        )
    return [r for r in rows if r[1] in visible]


def read_state(kb: Indexes, session: Session, collection: str) -> CollectionState:
    """The collection's :class:`CollectionState` (NotFoundError for an unknown collection)."""
    row = session.connection().execute(_state_statement(), {"collection": collection}).first()
    if row is None:
        raise NotFoundError(
            f"collection {collection!r} does not exist",
            hint=f"ingest into it first: daytwo kb ingest PATH --collection {collection}",
        )
    active_id, fusion, active_seq, mig_id, mig_state, rate, canary, other_id_, ostate, oseq = row
    seqs = {active_id: int(active_seq or 0)}
    route = None
    if other_id_ is not None:
        seqs[other_id_] = int(oseq or 0)
        if mig_id is not None and mig_state != "backfilling" and ostate == "shadow":
            route = Route(mig_id, other_id_, float(rate), float(canary))
    return CollectionState(active_id, kb.allowed_cache.fusion(fusion), seqs, route)


def generation(kb: Indexes, session: Session, generation_id: str) -> KbGeneration:
    """A generation's row, detached and cached (only its immutable columns are used)."""
    gen = kb.allowed_cache.generations.get(generation_id)
    if gen is None:
        gen = session.get(KbGeneration, generation_id)
        if gen is None:
            raise NotFoundError(f"generation {generation_id} is gone")
        session.expunge(gen)
        kb.allowed_cache.generations[gen.id] = gen
    return gen


@dataclass(frozen=True)
class SearchRequest:
    """One search, as the CLI, the REST route or a caller built it, carried to the index.

    ``filters``: metadata ``key: value`` equalities that must all hold (inside both index
    paths, under the ACL).
    """

    collection: str
    query: str
    principal: str
    groups: tuple[str, ...] = ()
    mode: str = "hybrid"
    k: int = 10
    filters: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown search mode {self.mode!r}", hint="use bm25, dense or hybrid")
        if not 1 <= self.k <= MAX_K:
            raise InputError(f"k={self.k} is out of range", hint=f"use 1 to {MAX_K}")
        object.__setattr__(self, "groups", tuple(self.groups))


def run_search(
    kb: Indexes,
    request: SearchRequest,
    query_vector: npt.NDArray[np.float32] | None = None,
    timings: SearchTimings | None = None,
    *,
    generation: KbGeneration | None = None,
    session: Session | None = None,
    state: CollectionState | None = None,
) -> list[Hit]:
    """See :meth:`daytwo.knowledge.KnowledgeBase.search` (``generation``: not the active
    one; ``session`` and ``state``: the caller's, when it has read them already)."""
    collection, mode, k = request.collection, request.mode, request.k
    owned = kb.store.session(snapshot=True) if session is None else contextlib.nullcontext(session)
    with owned as session, _tracer.start_as_current_span(f"retrieve {collection}") as span:
        span.set_attribute("gen_ai.operation.name", "retrieval")
        span.set_attribute("daytwo.kb.collection", collection)
        span.set_attribute("daytwo.kb.mode", mode)
        span.set_attribute("daytwo.principal", request.principal)
        hits = _search(kb, session, state, request, query_vector, timings, generation)
        span.set_attribute("daytwo.kb.hits", len(hits))
        capture(span, "daytwo.input", request.query)
        if content_policy().enabled:
            capture(
                span,
                "daytwo.retrieval.documents",
                [{"id": h.chunk_id, "content": h.text, "score": h.score} for h in hits],
            )
        if span.is_recording():
            span.add_event(
                "daytwo.decision",
                {
                    "daytwo.decision.kind": "retrieval",
                    "daytwo.decision.summary": (
                        f"{mode} search of {collection} as {request.principal or '(nobody)'} "
                        f"returned {len(hits)} chunks"
                    ),
                    "daytwo.decision.data": json.dumps(
                        {
                            "doc_ids": [h.doc_id for h in hits],
                            "k": k,
                            "filters": dict(request.filters or {}),
                        },
                        default=str,
                    ),
                },
            )
        return hits


def _search(
    kb: Indexes,
    session: Session,
    state: CollectionState | None,
    request: SearchRequest,
    query_vector: npt.NDArray[np.float32] | None,
    timings: SearchTimings | None,
    gen: KbGeneration | None = None,
) -> list[Hit]:
    collection, query, mode, k = request.collection, request.query, request.mode, request.k
    filters = request.filters
    if not query.strip() and query_vector is None:
        return []
    if state is None:
        state = read_state(kb, session, collection)
    if gen is None:
        gen = generation(kb, session, state.active)
    fusion = state.fusion
    depth = k if mode != "hybrid" else max(k, fusion.depth)
    vector = query_vector
    if mode != "bm25" and vector is None:
        started = time.perf_counter()
        vector = kb.embedder_for(gen).embed([query])[0]
        if timings:
            timings.embed_seconds += time.perf_counter() - started
    started = time.perf_counter()
    entries = principal_entries(session, collection, request.principal, request.groups)
    if not entries:
        return []
    seq = state.seqs.get(gen.id)
    index = kb.index_for(gen) if mode != "bm25" else None
    seq = kb.catch_up(session, gen.id, seq)
    permitted = _permitted(kb, session, gen.id, seq, collection, entries, filters)
    bm25: list[tuple[int, float]] = []
    dense: list[tuple[int, float]] = []
    pending: Future[list[tuple[int, float]]] | None = None
    if index is not None and vector is not None:
        if mode == "hybrid":  # the vector search runs while the keyword postings are read
            pending = _pool().submit(index.search, vector, depth, permitted.keys)
        else:
            dense = index.search(vector, depth, permitted.keys)
    if mode != "dense":
        bm25 = keyword_search(session, gen.id, query, depth, permitted)
    if pending is not None:
        dense = pending.result()
    if mode == "bm25":
        fused = fuse(bm25, [], _SINGLE, limit=k)
    elif mode == "dense":
        fused = fuse([], dense, _SINGLE, limit=k)
    else:
        fused = fuse(bm25, dense, fusion, limit=k)
    pks = [key for key, _, _ in fused]
    rows = {r[0]: r for r in _chunk_rows(session, pks, collection, entries, filters)}
    if timings:
        timings.search_seconds += time.perf_counter() - started
    hits: list[Hit] = []
    for pk, score, parts in fused:
        row = rows.get(pk)
        if row is None:  # not in this snapshot, or not permitted in it
            continue
        if mode == "bm25":
            score = parts["bm25"]["score"]
        elif mode == "dense":
            score = parts["dense"]["score"]
        hits.append(Hit(row[1], row[2], row[3], row[4], float(score), parts))
    return hits


_SINGLE = FusionConfig(method="rrf")


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the vector half of hybrid searches (usearch and SQLite release the GIL)."""
    return ThreadPoolExecutor(max_workers=4, thread_name_prefix="daytwo-ann")


def _permitted(
    kb: Indexes,
    session: Session,
    generation_id: str,
    seq: int,
    collection: str,
    entries: Sequence[str],
    filters: Mapping[str, Any] | None,
) -> Permitted:
    """The generation's chunks visible with ``entries`` and ``filters`` (sorted pks and
    their lengths; computed by SQL, cached per generation seq: any write moves the seq)."""
    key = (
        generation_id,
        seq,
        tuple(entries),
        json.dumps(dict(filters), sort_keys=True, default=str) if filters else "",
    )
    permitted = kb.allowed_cache.get(key)
    if permitted is None:
        chunks = KbChunk.__table__.c
        stmt = sa.select(chunks.id, chunks.token_count).where(
            chunks.generation == generation_id, permitted_clause(collection, entries, filters)
        )
        rows = session.connection().execute(stmt).all()
        keys = np.fromiter((r[0] for r in rows), dtype=np.uint64, count=len(rows))
        lengths = np.fromiter((r[1] or 0 for r in rows), dtype=np.float32, count=len(rows))
        order = np.argsort(keys, kind="stable")
        permitted = Permitted(keys[order], lengths[order])
        kb.allowed_cache.put(key, permitted)
    return permitted
