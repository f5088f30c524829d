"""Search: keyword, vector or hybrid, always as a principal, with a retrieval span.

Both paths enforce the ACL inside the search: the keyword query carries the ACL as
a SQL ``EXISTS``; the vector search gets the set of chunk keys the principal may see
(computed by the same SQL and cached per generation ``seq``) and searches until it
has ``k`` of them. Metadata filters work the same way.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from opentelemetry import trace

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.acl import permitted_clause, principal_entries
from daytwo.knowledge.fts import keyword_search
from daytwo.knowledge.fusion import FusionConfig, fuse
from daytwo.store.tables.knowledge import KbChunk, KbCollection, KbGeneration

if TYPE_CHECKING:
    from daytwo.knowledge.service import KnowledgeBase

__all__ = ["MODES", "Hit", "SearchTimings", "run_search"]

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


class AllowedCache:
    """Small LRU of permitted chunk-key arrays (keyed by generation seq and principal),
    plus the immutable parts of generations and parsed fusion configs."""

    def __init__(self, size: int = 64) -> None:
        self._data: OrderedDict[tuple[Any, ...], npt.NDArray[np.uint64]] = OrderedDict()
        self._size = size
        self.generations: dict[str, KbGeneration] = {}
        self._fusion: dict[str, FusionConfig] = {}

    def fusion(self, data: dict[str, Any] | None) -> FusionConfig:
        """The parsed fusion config of a collection row (parsed once per distinct value)."""
        key = json.dumps(data or {}, sort_keys=True)
        config = self._fusion.get(key)
        if config is None:
            config = self._fusion[key] = FusionConfig.from_dict(data)
        return config

    def get(self, key: tuple[Any, ...]) -> npt.NDArray[np.uint64] | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: tuple[Any, ...], value: npt.NDArray[np.uint64]) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self._size:
            self._data.popitem(last=False)


def run_search(
    kb: KnowledgeBase,
    collection: str,
    query: str,
    principal: str,
    groups: Sequence[str] = (),
    mode: str = "hybrid",
    k: int = 10,
    filters: Mapping[str, Any] | None = None,
    query_vector: npt.NDArray[np.float32] | None = None,
    timings: SearchTimings | None = None,
    *,
    generation: KbGeneration | None = None,
) -> list[Hit]:
    """See :meth:`daytwo.knowledge.KnowledgeBase.search` (``generation``: not the active one)."""
    if mode not in MODES:
        raise InputError(f"unknown search mode {mode!r}", hint="use bm25, dense or hybrid")
    if not 1 <= k <= MAX_K:
        raise InputError(f"k={k} is out of range", hint=f"use 1 to {MAX_K}")
    with _tracer.start_as_current_span(f"retrieve {collection}") as span:
        span.set_attribute("gen_ai.operation.name", "retrieval")
        span.set_attribute("daytwo.kb.collection", collection)
        span.set_attribute("daytwo.kb.mode", mode)
        span.set_attribute("daytwo.principal", principal)
        hits = _search(
            kb,
            collection,
            query,
            principal,
            groups,
            mode,
            k,
            filters,
            query_vector,
            timings,
            generation,
        )
        span.set_attribute("daytwo.kb.hits", len(hits))
        span.add_event(
            "daytwo.decision",
            {
                "daytwo.decision.kind": "retrieval",
                "daytwo.decision.summary": (
                    f"{mode} search of {collection} as {principal or '(nobody)'} "
                    f"returned {len(hits)} chunks"
                ),
                "daytwo.decision.data": json.dumps(
                    {"doc_ids": [h.doc_id for h in hits], "k": k, "filters": dict(filters or {})},
                    default=str,
                ),
            },
        )
        return hits


def _search(
    kb: KnowledgeBase,
    collection: str,
    query: str,
    principal: str,
    groups: Sequence[str],
    mode: str,
    k: int,
    filters: Mapping[str, Any] | None,
    query_vector: npt.NDArray[np.float32] | None,
    timings: SearchTimings | None,
    generation: KbGeneration | None = None,
) -> list[Hit]:
    if not query.strip() and query_vector is None:
        return []
    cache = kb.allowed_cache
    gen, fusion = _generation_and_fusion(kb, collection, generation)
    depth = k if mode != "hybrid" else max(k, fusion.depth)
    vector = query_vector
    if mode != "bm25" and vector is None:
        started = time.perf_counter()
        vector = kb.embedder_for(gen).embed([query])[0]
        if timings:
            timings.embed_seconds += time.perf_counter() - started
    started = time.perf_counter()
    index = kb.index_for(gen) if mode != "bm25" else None
    bm25: list[tuple[int, float]] = []
    dense: list[tuple[int, float]] = []
    chunks = KbChunk.__table__.c
    with kb.store.session() as session:
        entries = principal_entries(session, collection, principal, groups)
        if not entries:
            return []
        if mode != "dense":
            bm25 = keyword_search(session, gen.id, collection, query, depth, entries, filters)
        if index is not None and vector is not None:
            seq = kb.catch_up(session, gen.id)
            key = (
                gen.id,
                seq,
                tuple(entries),
                json.dumps(dict(filters or {}), sort_keys=True, default=str),
            )
            allowed = cache.get(key)
            if allowed is None:
                stmt = sa.select(chunks.id).where(
                    chunks.generation == gen.id, permitted_clause(collection, entries, filters)
                )
                allowed = np.sort(np.fromiter(session.connection().scalars(stmt), dtype=np.uint64))
                cache.put(key, allowed)
            dense = index.search(vector, depth, allowed)
        if mode == "bm25":
            fused = fuse(bm25, [], FusionConfig(method="rrf"))
        elif mode == "dense":
            fused = fuse([], dense, FusionConfig(method="rrf"))
        else:
            fused = fuse(bm25, dense, fusion)
        fused = fused[:k]
        rows = {
            r.id: r
            for r in session.connection().execute(
                sa.select(
                    chunks.id, chunks.doc_id, chunks.chunk_id, chunks.title, chunks.text
                ).where(chunks.id.in_([key for key, _, _ in fused]))
            )
        }
    if timings:
        timings.search_seconds += time.perf_counter() - started
    hits: list[Hit] = []
    for pk, score, parts in fused:
        row = rows.get(pk)
        if row is None:  # deleted between the index read and the row read
            continue
        if mode == "bm25":
            score = parts["bm25"]["score"]
        elif mode == "dense":
            score = parts["dense"]["score"]
        hits.append(Hit(row.doc_id, row.chunk_id, row.title, row.text, float(score), parts))
    return hits


def _generation_and_fusion(
    kb: KnowledgeBase, collection: str, generation: KbGeneration | None
) -> tuple[KbGeneration, FusionConfig]:
    """The generation to read (the active one unless given) and the collection's fusion."""
    table = KbCollection.__table__.c
    with kb.store.session() as session:
        row = (
            session.connection()
            .execute(
                sa.select(table.active_generation, table.fusion).where(table.name == collection)
            )
            .first()
        )
        if row is None or (generation is None and not row.active_generation):
            raise NotFoundError(
                f"collection {collection!r} does not exist",
                hint=f"ingest into it first: daytwo kb ingest PATH --collection {collection}",
            )
        fusion = kb.allowed_cache.fusion(row.fusion)
        if generation is not None:
            return generation, fusion
        gen = kb.allowed_cache.generations.get(row.active_generation)
        if gen is None:
            gen = session.get(KbGeneration, row.active_generation)
            if gen is None:
                raise NotFoundError(f"generation {row.active_generation} of {collection} is gone")
            session.expunge(gen)
            kb.allowed_cache.generations[gen.id] = gen
        return gen, fusion
