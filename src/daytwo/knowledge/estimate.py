"""Predict the time and storage of a new generation from a sample, before it starts.

``daytwo kb migrate --estimate`` calls :func:`estimate_migration`: it draws a seeded
random sample of the collection's documents (50 or 2 %, whichever is larger, at most
``cap``), chunks and embeds it with the *target* embedder and chunking, times a rolled-
back write of those chunks and an HNSW build of their vectors with the target
parameters, and scales everything by the share of the collection's text (characters)
the sample holds. Documents written in the last two minutes count twice: the backfill's
final sweep embeds them again (on a freshly filled collection that doubles the time).
Nothing is created: no generation, no migration, no file (the HNSW
file is written to a temporary directory to weigh it, then removed).

Storage is what the generation adds: the float32 vectors stored with the chunks, the
HNSW file (its measured bytes per vector, plus the empty file), and the chunk text and
titles. Row overhead of the database and its full-text index is not counted.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.ann import AnnParams
from daytwo.knowledge.chunking import ChunkingConfig
from daytwo.knowledge.embedders import get_embedder
from daytwo.knowledge.generations import SWEEP_MARGIN_SECONDS
from daytwo.knowledge.indexes import Indexes
from daytwo.knowledge.writes import embed_pieces, write_chunks
from daytwo.store.tables.knowledge import KbChunk, KbCollection, KbDocument

__all__ = ["MigrationEstimate", "estimate_migration", "generation_storage", "sample_size"]

SAMPLE_MIN = 50
SAMPLE_SHARE = 0.02


def sample_size(total: int, cap: int) -> int:
    """50 or 2 % of ``total``, whichever is larger, at most ``cap`` and ``total``."""
    return min(total, cap, max(SAMPLE_MIN, math.ceil(total * SAMPLE_SHARE)))


@dataclass(frozen=True)
class MigrationEstimate:
    """What a migration to ``embedder`` would cost, predicted from a sample."""

    collection: str
    embedder: str
    dim: int
    chunking: dict[str, Any]
    documents: int
    sample_documents: int
    sample_chunks: int
    sample_share: float  # the sample's share of the collection's characters
    chunks: int
    seconds: float
    seconds_parts: dict[str, float]
    storage: dict[str, int]
    current_storage: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "collection": self.collection,
            "embedder": self.embedder,
            "dim": self.dim,
            "chunking": self.chunking,
            "documents": self.documents,
            "sample": {
                "documents": self.sample_documents,
                "chunks": self.sample_chunks,
                "share_of_text": round(self.sample_share, 4),
            },
            "predicted": {
                "chunks": self.chunks,
                "seconds": round(self.seconds, 2),
                "seconds_parts": {k: round(v, 2) for k, v in self.seconds_parts.items()},
                "storage_bytes": self.storage,
            },
            "current_generation_storage_bytes": self.current_storage,
        }


class _Rollback(Exception):
    """Raised inside the timed write so its transaction rolls back."""


def generation_storage(kb: Indexes, generation: str, index_dir: Path | None) -> dict[str, int]:
    """Bytes a generation holds: vectors, text (chunk text + titles), its HNSW file."""
    with kb.store.session() as session:
        vec, text = session.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(sa.func.length(KbChunk.vector)), 0),
                sa.func.coalesce(
                    sa.func.sum(
                        sa.func.length(sa.cast(KbChunk.text, sa.LargeBinary))
                        + sa.func.length(sa.cast(KbChunk.title, sa.LargeBinary))
                    ),
                    0,
                ),
            ).where(KbChunk.generation == generation)
        ).one()
    index = 0
    if index_dir is not None and (index_dir / "index.usearch").exists():
        index = (index_dir / "index.usearch").stat().st_size
    vectors, texts = int(vec), int(text)
    return {"vectors": vectors, "index": index, "text": texts, "total": vectors + index + texts}


def estimate_migration(
    kb: Indexes,
    collection: str,
    embedder: str,
    *,
    chunking: ChunkingConfig | None = None,
    ann_params: AnnParams | None = None,
    cap: int = 2000,
    seed: int = 0,
) -> MigrationEstimate:
    """Embed a sample with the target embedder and scale it to the whole collection."""
    if cap < 1:
        raise InputError(f"sample cap {cap} must be at least 1", hint="for example 2000")
    with kb.store.session() as session:
        if session.get(KbCollection, collection) is None:
            raise NotFoundError(
                f"collection {collection!r} does not exist", hint="see daytwo kb stats"
            )
    active = kb.active_generation(collection)
    target = get_embedder(embedder)  # ConfigError for an unknown name
    config = chunking or ChunkingConfig.from_dict(active.chunking)
    params = ann_params or AnnParams.from_dict(active.ann_params)
    chars = sa.func.length(KbDocument.text) + sa.func.length(KbDocument.title)
    since = time.time() - SWEEP_MARGIN_SECONDS
    with kb.store.session() as session:
        rows = session.execute(
            sa.select(KbDocument.doc_id, chars, KbDocument.updated_at)
            .where(KbDocument.collection == collection)
            .order_by(KbDocument.doc_id)
        ).all()
        ids = [r[0] for r in rows]
        total_chars = sum(int(r[1] or 0) for r in rows)
        # The backfill's final sweep embeds these again (see generations._final_sweep).
        recent_chars = sum(int(r[1] or 0) for r in rows if r[2].timestamp() >= since)
        picked = sorted(random.Random(seed).sample(ids, sample_size(len(ids), cap)))
        docs = [
            (r[0], r[1], r[2])
            for r in session.execute(
                sa.select(KbDocument.doc_id, KbDocument.title, KbDocument.text).where(
                    KbDocument.collection == collection, KbDocument.doc_id.in_(picked)
                )
            )
        ]
    current = generation_storage(kb, active.id, kb.index_dir(active))
    dim = target.dim
    empty = {"vectors": 0, "index": 0, "text": 0, "total": 0}
    if not docs or total_chars == 0:
        return MigrationEstimate(
            collection, target.name, dim, config.to_dict(), len(ids), 0, 0, 0.0, 0, 0.0,
            {"embed": 0.0, "write": 0.0, "index": 0.0, "sweep": 0.0}, empty, current,
        )  # fmt: skip
    sample_chars = sum(len(title) + len(text) for _, title, text in docs)
    share = sample_chars / total_chars

    started = time.perf_counter()
    embedded = embed_pieces(target, config, docs)
    embed_s = time.perf_counter() - started
    pieces = [p for doc_pieces in embedded.values() for p in doc_pieces]

    started = time.perf_counter()
    try:
        with kb.store.session(write=True) as session:
            write_chunks(session, f"estimate-{seed}", collection, 0, pieces)
            session.flush()
            raise _Rollback
    except _Rollback:
        pass
    write_s = time.perf_counter() - started

    from usearch.index import Index

    def new_index() -> Index:
        return Index(
            ndim=dim,
            metric="cos",
            dtype=params.dtype,
            connectivity=params.connectivity,
            expansion_add=params.expansion_add,
            expansion_search=params.expansion_search,
        )

    vectors = np.stack([v for _, v in pieces]).astype(np.float32) if pieces else None
    with tempfile.TemporaryDirectory(prefix="daytwo-estimate-") as tmp:
        new_index().save(str(Path(tmp) / "empty.usearch"))
        empty_bytes = (Path(tmp) / "empty.usearch").stat().st_size
        started = time.perf_counter()
        index = new_index()
        if vectors is not None:
            index.add(np.arange(len(pieces), dtype=np.uint64), vectors)
        index_s = time.perf_counter() - started
        index.save(str(Path(tmp) / "sample.usearch"))
        sample_index_bytes = (Path(tmp) / "sample.usearch").stat().st_size - empty_bytes

    scale = 1.0 / share
    chunks = round(len(pieces) * scale)
    text_bytes = sum(len(c.text.encode()) + len(c.title.encode()) for c, _ in pieces)
    per_vector_index = sample_index_bytes / len(pieces) if pieces else 0.0
    storage = {
        "vectors": chunks * dim * 4,
        "index": round(empty_bytes + per_vector_index * chunks),
        "text": round(text_bytes * scale),
    }
    storage["total"] = sum(storage.values())
    parts = {
        "embed": embed_s * scale,
        "write": write_s * scale,
        "index": index_s * scale,
        # Documents written in the last SWEEP_MARGIN_SECONDS are embedded and written twice.
        "sweep": (embed_s + write_s) * scale * recent_chars / total_chars,
    }
    return MigrationEstimate(
        collection=collection,
        embedder=target.name,
        dim=dim,
        chunking=config.to_dict(),
        documents=len(ids),
        sample_documents=len(docs),
        sample_chunks=len(pieces),
        sample_share=share,
        chunks=chunks,
        seconds=sum(parts.values()),
        seconds_parts=parts,
        storage=storage,
        current_storage=current,
    )
