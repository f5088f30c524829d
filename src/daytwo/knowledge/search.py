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
import dataclasses
import functools
import json
import re
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

from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.knowledge.acl import permitted_clause, principal_entries
from daytwo.knowledge.bm25 import Permitted
from daytwo.knowledge.cursors import Cursor, decode_cursor, encode_cursor, fingerprint
from daytwo.knowledge.filters import Filter, filter_clause, parse_filter
from daytwo.knowledge.fts import keyword_search
from daytwo.knowledge.fusion import Fused, FusionConfig, fuse
from daytwo.knowledge.generations import OPEN_STATES
from daytwo.knowledge.indexes import Indexes
from daytwo.knowledge.keyword_query import (
    Highlight,
    KeywordOptions,
    boolean_constraint,
    boolean_search,
    highlights,
    parse_query,
)
from daytwo.knowledge.rerank import Reranker
from daytwo.store.tables.knowledge import KbAcl, KbChunk, KbCollection, KbDocument, KbGeneration
from daytwo.store.tables.knowledge_maintenance import KbMigration
from daytwo.tracing.content import capture, content_policy

__all__ = [
    "GROUP_BY",
    "MODES",
    "CollectionState",
    "Hit",
    "Hits",
    "Route",
    "SearchRequest",
    "SearchTimings",
    "generation",
    "read_state",
    "rerank_hits",
    "run_search",
]

MODES = ("bm25", "dense", "hybrid")
GROUP_BY = ("document",)
MAX_K = 1000
MAX_WINDOW = 1000  # offset + k of a page (as Elasticsearch's max_result_window)
MAX_GROUP_SIZE = 20
MAX_RERANK_DEPTH = 200  # a cross-encoder scores every one of them, per search
_RERANKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
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
    chunks: tuple[Hit, ...] = ()
    """With ``group_by="document"``: the document's best chunks, best first (this hit's
    own chunk is the first); otherwise empty."""
    highlights: tuple[Highlight, ...] = ()
    """With ``keyword.highlight``: where the query's terms occur in the title and text."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form (CLI ``--json``, REST)."""
        out: dict[str, Any] = {
            "doc_id": self.doc_id,
            "chunk_id": self.chunk_id,
            "title": self.title,
            "text": self.text,
            "score": self.score,
            "contributions": self.contributions,
        }
        if self.chunks:
            out["chunks"] = [
                {
                    "chunk_id": c.chunk_id,
                    "text": c.text,
                    "score": c.score,
                    "highlights": [h.to_dict() for h in c.highlights],
                }
                for c in self.chunks
            ]
        if self.highlights:
            out["highlights"] = [h.to_dict() for h in self.highlights]
        return out


class Hits(list[Hit]):
    """A page of hits, and the cursor of the next page (None when this is the last)."""

    next_cursor: str | None = None


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
    filters: Filter | None,
) -> list[Sequence[Any]]:
    """(pk, doc_id, chunk_id, title, text) of the given chunks that are visible with
    ``entries`` and ``filters`` (any order).

    The ACL (and the filters) are tested again against the rows just read, in the same
    snapshot: whatever the index handed over (an ANN index shared by concurrent
    searches, a cached permitted set), no text leaves without this check. Two small
    statements on SQLite; one on PostgreSQL, whose ACL test is a ``LATERAL ... LIMIT 1``
    probe per chunk (:data:`_PG_VISIBLE_ROWS`).
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


# The rows and their ACL test in one statement. The test is a LATERAL subquery with a
# LIMIT, which PostgreSQL cannot flatten into a join: it runs once per chunk read (a
# page's worth), a probe of kb_acl's key by (collection, doc_id) once kb_acl has
# statistics (0.2 ms for 30 chunks of 2,000 documents). A semi-join left the join order
# to the statistics: straight after a bulk load into a new collection it was planned as
# a nested loop over the collection's whole ACL (47 ms). Without any statistics the
# probe may still go through the (collection, entry) index (2.8 ms), which is why the
# write path analyzes tables that have none (ingest.analyze_grown_tables).
_PG_VISIBLE_ROWS = (
    "SELECT c.id, c.doc_id, c.chunk_id, c.title, c.text FROM kb_chunks AS c "
    "CROSS JOIN LATERAL (SELECT 1 FROM kb_acl AS a WHERE a.collection = c.collection "
    "AND a.doc_id = c.doc_id AND a.entry = ANY(%(entries)s) LIMIT 1) AS visible "
    "WHERE c.id = ANY(%(pks)s) AND c.collection = %(c)s"
)


def _meta_filtered(
    connection: sa.Connection,
    collection: str,
    rows: list[Sequence[Any]],
    visible: set[str],
    filters: Filter | None,
) -> list[Sequence[Any]]:
    """``rows`` of the ``visible`` documents that match the metadata ``filters``."""
    if filters is not None and visible:
        documents = KbDocument.__table__.c
        visible = set(
            connection.execute(
                sa.select(documents.doc_id).where(
                    documents.collection == collection,
                    documents.doc_id.in_(sorted(visible)),
                    filter_clause(filters, collection, documents.doc_id),
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

    ``filters``: a typed metadata filter (:mod:`daytwo.knowledge.filters`: the JSON shape,
    or the flat ``{key: value}`` equalities), applied inside both index paths under the
    ACL; validated here (``InputError`` naming the wrong part). ``fusion``: this search's
    fusion instead of the collection's. ``group_by="document"``: one hit per document
    (its best ``group_size`` chunks in :attr:`Hit.chunks`), ``k`` counts documents.
    ``cursor``: the ``next_cursor`` of the previous page of the same search.
    ``keyword``: boolean syntax with phrases, a title boost, highlights
    (:mod:`daytwo.knowledge.keyword_query`). ``rerank``: the name of a reranker the
    operator configured (:meth:`Indexes.reranker`), which rescores the first
    ``rerank_depth`` hits; pages (``k``, cursors) are cut from that reranked list.
    """

    collection: str
    query: str
    principal: str
    groups: tuple[str, ...] = ()
    mode: str = "hybrid"
    k: int = 10
    filters: Mapping[str, Any] | Filter | None = None
    fusion: FusionConfig | None = None
    group_by: str | None = None
    group_size: int = 1
    cursor: str | None = None
    keyword: KeywordOptions | None = None
    rerank: str | None = None
    rerank_depth: int = 50

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown search mode {self.mode!r}", hint="use bm25, dense or hybrid")
        if not 1 <= self.k <= MAX_K:
            raise InputError(f"k={self.k} is out of range", hint=f"use 1 to {MAX_K}")
        if self.group_by is not None and self.group_by not in GROUP_BY:
            raise InputError(
                f"unknown group_by {self.group_by!r}", hint="use 'document' (or leave it out)"
            )
        if not 1 <= self.group_size <= MAX_GROUP_SIZE:
            raise InputError(
                f"group_size={self.group_size} is out of range", hint=f"use 1 to {MAX_GROUP_SIZE}"
            )
        if self.group_size > 1 and self.group_by is None:
            raise InputError("group_size needs group_by", hint="add group_by=document")
        if self.cursor is not None and not (0 < len(self.cursor) <= 400):
            raise InputError("the cursor is empty or too long", hint="pass next_cursor unchanged")
        if self.rerank is not None:
            if not _RERANKER_NAME.match(self.rerank):
                raise InputError(
                    f"reranker name {self.rerank!r} is not valid",
                    hint="give the name of a configured reranker (not a URL)",
                )
            if not 1 <= self.rerank_depth <= MAX_RERANK_DEPTH:
                raise InputError(
                    f"rerank_depth={self.rerank_depth} is out of range",
                    hint=f"use 1 to {MAX_RERANK_DEPTH}",
                )
            if self.k > self.rerank_depth:
                raise InputError(
                    f"k={self.k} is more than rerank_depth={self.rerank_depth}",
                    hint="raise rerank_depth (the hits reranked) to at least k",
                )
        object.__setattr__(self, "groups", tuple(self.groups))
        object.__setattr__(self, "filters", parse_filter(self.filters))
        if self.keyword is not None and self.keyword.syntax == "boolean":
            parse_query(self.query)  # a malformed query is the caller's error, in any mode

    @property
    def filter(self) -> Filter | None:
        """The parsed filter (validated at construction)."""
        return self.filters if isinstance(self.filters, Filter) else None

    def fingerprint(self) -> str:
        """What a cursor of this search must match (everything but ``k`` and the cursor)."""
        flt = self.filter
        return fingerprint(
            {
                "collection": self.collection,
                "query": self.query,
                "principal": self.principal,
                "groups": sorted(self.groups),
                "mode": self.mode,
                "filter": flt.canonical() if flt is not None else None,
                "fusion": self.fusion.to_dict() if self.fusion is not None else None,
                "group_by": self.group_by,
                "group_size": self.group_size,
                "keyword": dataclasses.asdict(self.keyword) if self.keyword else None,
                "rerank": [self.rerank, self.rerank_depth] if self.rerank else None,
            }
        )


def run_search(
    kb: Indexes,
    request: SearchRequest,
    query_vector: npt.NDArray[np.float32] | None = None,
    timings: SearchTimings | None = None,
    *,
    generation: KbGeneration | None = None,
    session: Session | None = None,
    state: CollectionState | None = None,
) -> Hits:
    """See :meth:`daytwo.knowledge.KnowledgeBase.search` (``generation``: not the active
    one; ``session`` and ``state``: the caller's, when it has read them already)."""
    collection, mode, k = request.collection, request.mode, request.k
    owned = kb.store.session(snapshot=True) if session is None else contextlib.nullcontext(session)
    hits: Hits
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
                            "filters": request.filter.to_dict() if request.filter else {},
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
) -> Hits:
    collection, query, mode, k = request.collection, request.query, request.mode, request.k
    filters = request.filter
    out = Hits()
    if state is None:
        state = read_state(kb, session, collection)
    if gen is None:
        gen = generation(kb, session, state.active)
    reranker = kb.reranker(request.rerank) if request.rerank is not None else None
    fingerprint_ = request.fingerprint()
    offset = 0
    if request.cursor is not None:
        cursor = decode_cursor(request.cursor, fingerprint_, state.seqs)
        if cursor.generation != gen.id:
            raise ConflictError(
                "the cursor was issued by another index generation of this collection",
                hint="search again without a cursor",
            )
        offset = cursor.offset
    if reranker is not None:
        first = dataclasses.replace(request, k=request.rerank_depth, cursor=None, rerank=None)
        ranked = rerank_hits(
            query, _search(kb, session, state, first, query_vector, timings, gen), reranker
        )
        out.extend(ranked[offset : offset + k])
        if offset + k < len(ranked):
            out.next_cursor = encode_cursor(Cursor(fingerprint_, gen.id, offset + k))
        return out
    want = offset + k
    if want > MAX_WINDOW:
        raise InputError(
            f"a page ends at most {MAX_WINDOW} results deep (this one at {want})",
            hint="narrow the search with filters instead of paging further",
        )
    if not query.strip() and query_vector is None:
        return out
    fusion = request.fusion or state.fusion
    grouped = request.group_by == "document"
    depth = want + 1 if mode != "hybrid" else max(want + 1, fusion.depth)
    if grouped:
        depth = max(depth, (want + 1) * request.group_size * 2)
    vector = query_vector
    if mode != "bm25" and vector is None:
        started = time.perf_counter()
        vector = kb.embedder_for(gen).embed([query])[0]
        if timings:
            timings.embed_seconds += time.perf_counter() - started
    started = time.perf_counter()
    entries = principal_entries(session, collection, request.principal, request.groups)
    if not entries:
        return out
    seq = state.seqs.get(gen.id)
    index = kb.index_for(gen) if mode != "bm25" else None
    seq = kb.catch_up(session, gen.id, seq)
    permitted = _permitted(kb, session, gen.id, seq, collection, entries, filters)
    dense_keys = permitted.keys
    if index is not None and request.keyword is not None and request.keyword.syntax == "boolean":
        # what the boolean query requires or excludes holds for the dense half too
        constraint = boolean_constraint(session, gen.id, query, permitted)
        if constraint is not None:
            dense_keys = constraint
    single = _SINGLE if mode != "hybrid" else fusion
    page: list[Grouped]
    while True:
        bm25: list[tuple[int, float]] = []
        dense: list[tuple[int, float]] = []
        pending: Future[list[tuple[int, float]]] | None = None
        if index is not None and vector is not None:
            if mode == "hybrid":  # the vector search runs while the keyword postings are read
                pending = _pool().submit(index.search, vector, depth, dense_keys)
            else:
                dense = index.search(vector, depth, dense_keys)
        if mode != "dense":
            if request.keyword is not None and request.keyword.custom:
                bm25 = boolean_search(session, gen.id, query, depth, permitted, request.keyword)
            else:
                visible = (
                    None if permitted.complete else permitted_clause(collection, entries, filters)
                )
                bm25 = keyword_search(session, gen.id, query, depth, permitted, visible=visible)
        if pending is not None:
            dense = pending.result()
        fused = fuse(bm25, dense, single, limit=None if grouped else want + 1)
        if not grouped:
            more = len(fused) > want
            page = [(pk, score, parts, ()) for pk, score, parts in fused[offset:want]]
            break
        groups = _grouped(session, fused, want + 1, request.group_size)
        exhausted = len(bm25) < depth and len(dense) < depth
        if len(groups) > want or exhausted or depth >= permitted.keys.size:
            more = len(groups) > want
            page = groups[offset:want]
            break
        depth = min(depth * 4, int(permitted.keys.size))
    pks = [pk for pk, _, _, _ in page] + [pk for *_, rest in page for pk, _, _ in rest]
    rows = {r[0]: r for r in _chunk_rows(session, pks, collection, entries, filters)}
    if timings:
        timings.search_seconds += time.perf_counter() - started

    def hit(pk: int, score: float, parts: dict[str, dict[str, float]]) -> Hit | None:
        row = rows.get(pk)
        if row is None:  # not in this snapshot, or not permitted in it
            return None
        if mode != "hybrid":
            score = parts[mode]["score"]
        return Hit(row[1], row[2], row[3], row[4], float(score), parts)

    for pk, score, parts, rest in page:
        best = hit(pk, score, parts)
        if best is None:
            continue
        if grouped:
            others = [h for h in (hit(*r) for r in rest) if h is not None]
            best = dataclasses.replace(best, chunks=(best, *others))
        out.append(best)
    if request.keyword is not None and request.keyword.highlight and out:
        _highlight(session, out, query, request.keyword, gen.id)
    if more and want < MAX_WINDOW:
        out.next_cursor = encode_cursor(Cursor(fingerprint_, gen.id, want))
    return out


def rerank_hits(
    query: str, hits: Sequence[Hit], reranker: Reranker, k: int | None = None
) -> list[Hit]:
    """``hits`` rescored by ``reranker`` and reordered (ties keep the search's order),
    the first ``k`` (all when None)."""
    if not hits:
        return []
    texts = [f"{h.title}\n{h.text}" if h.title else h.text for h in hits]
    scores = reranker.score(query, texts)
    order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))
    out = []
    for rank, i in enumerate(order[: k if k is not None else len(order)]):
        hit = hits[i]
        parts = {
            **hit.contributions,
            "fused": {"score": hit.score, "rank": i + 1},
            "rerank": {"score": scores[i], "rank": rank + 1},
        }
        out.append(dataclasses.replace(hit, score=scores[i], contributions=parts))
    return out


def _highlight(
    session: Session, hits: Hits, query: str, options: KeywordOptions, generation: str
) -> None:
    """Mark where the query's terms occur in each hit (and its grouped chunks), in place."""
    every = [h for hit in hits for h in (hit.chunks or (hit,))]
    marks = dict(
        zip(
            (h.chunk_id for h in every),
            highlights(session, query, options, [(h.title, h.text) for h in every], generation),
            strict=True,
        )
    )
    for i, hit in enumerate(hits):
        chunks = tuple(
            dataclasses.replace(c, highlights=tuple(marks[c.chunk_id])) for c in hit.chunks
        )
        hits[i] = dataclasses.replace(hit, highlights=tuple(marks[hit.chunk_id]), chunks=chunks)


Grouped = tuple[int, float, dict[str, dict[str, float]], tuple[Fused, ...]]


def _grouped(session: Session, fused: list[Fused], limit: int, size: int) -> list[Grouped]:
    """The best ``limit`` documents of ``fused`` (ranked by their best chunk): each as its
    best chunk and up to ``size - 1`` more of its chunks, best first."""
    chunks = KbChunk.__table__.c
    doc_of: dict[int, str] = {}
    pks = [pk for pk, _, _ in fused]
    for i in range(0, len(pks), 5000):
        rows = session.connection().execute(
            sa.select(chunks.id, chunks.doc_id).where(chunks.id.in_(pks[i : i + 5000]))
        )
        doc_of.update((int(pk), str(doc)) for pk, doc in rows)
    order: dict[str, list[Fused]] = {}
    for item in fused:
        doc = doc_of.get(item[0])
        if doc is None:
            continue
        members = order.get(doc)
        if members is None:
            if len(order) >= limit:
                continue
            members = order[doc] = []
        if len(members) < size:
            members.append(item)
    return [(m[0][0], m[0][1], m[0][2], tuple(m[1:])) for m in order.values()]


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
    filters: Filter | None,
) -> Permitted:
    """The generation's chunks visible with ``entries`` and ``filters`` (sorted pks and
    their lengths; computed by SQL, cached per generation seq: any write moves the seq)."""
    key = (
        generation_id,
        seq,
        tuple(entries),
        filters.canonical() if filters is not None else "",
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
        total = (
            session.connection()
            .execute(sa.select(sa.func.count()).where(chunks.generation == generation_id))
            .scalar_one()
        )
        permitted = Permitted(keys[order], lengths[order], complete=len(rows) == total)
        kb.allowed_cache.put(key, permitted)
    return permitted
