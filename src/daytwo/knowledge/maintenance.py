"""Index health and online vacuum: tombstone ratio, recall probe, compaction, auto-vacuum.

- **Tombstone ratio** of a generation: ANN deletions (``kb_tombstones``) since its index
  was last compacted, over live vectors plus those tombstones.
- **Recall probe**: sampled queries (stored vectors with a little noise) searched with
  the ANN index and exactly (brute force over the vectors in the database, the system
  of record); recall@10 is the mean overlap.
- **Vacuum**: rebuilds each live generation's ANN index from the database in the
  background and swaps it in (searches keep using the old index until the swap, then
  catch up on the writes made meanwhile); then compacts storage: FTS5 ``optimize``,
  SQLite ``VACUUM`` and a WAL checkpoint (PostgreSQL: ``VACUUM (FULL, ANALYZE)`` of the
  kb tables, which rewrites them, their TOAST tables and indexes into new files and
  takes an exclusive lock on each table meanwhile), so erased text no longer exists in
  the database files. PostgreSQL's WAL still holds it until the segments are recycled
  *and* overwritten: ``CHECKPOINT`` + ``SELECT pg_switch_wal()`` close the segment, and
  with ``wal_recycle = off`` the next checkpoints delete old segments instead of renaming
  them for reuse (with the default, a recycled segment keeps its old bytes until it is
  written over, which takes about ``min_wal_size`` of new WAL). Crash-safe: the index file is
  replaced atomically and the database is only rewritten by the database itself.
- **Auto-vacuum**: :func:`auto_vacuum` vacuums when a live generation's tombstone ratio
  passes a threshold (``DEFAULT_AUTO_VACUUM_THRESHOLD`` unless given).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge.ann import AnnIndex, AnnParams
from daytwo.knowledge.fts import TERMS_TABLE
from daytwo.knowledge.generations import write_lock
from daytwo.knowledge.indexes import Indexes
from daytwo.store import run_text, utcnow
from daytwo.store.tables.knowledge import KbChunk, KbCollection, KbGeneration, KbTombstone
from daytwo.store.tables.knowledge_maintenance import KbIndexMaintenance

__all__ = [
    "DEFAULT_AUTO_VACUUM_THRESHOLD",
    "auto_vacuum",
    "compact_storage",
    "exact_top_k",
    "health",
    "recall_probe",
    "tombstone_ratio",
    "vacuum",
    "vacuum_generation",
]

DEFAULT_AUTO_VACUUM_THRESHOLD = 0.2
_KB_TABLES = ("kb_chunks", "kb_documents", "kb_acl", "kb_doc_meta", "kb_tombstones")


def _live_generations(kb: Indexes, collection: str | None) -> list[KbGeneration]:
    with kb.store.session() as session:
        if collection is not None and session.get(KbCollection, collection) is None:
            raise NotFoundError(
                f"collection {collection!r} does not exist", hint="see daytwo kb stats"
            )
        q = sa.select(KbGeneration).where(KbGeneration.state.in_(("active", "shadow")))
        if collection is not None:
            q = q.where(KbGeneration.collection == collection)
        gens = list(session.scalars(q.order_by(KbGeneration.collection, KbGeneration.created_at)))
        session.expunge_all()
        return gens


def tombstone_ratio(kb: Indexes, gen: KbGeneration) -> dict[str, Any]:
    """Tombstones since the last compaction, live vectors, and their ratio."""
    with kb.store.session() as session:
        row = session.get(KbIndexMaintenance, gen.id)
        since = row.compacted_seq if row is not None else 0
        tombstones = int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(KbTombstone)
                .where(KbTombstone.generation == gen.id, KbTombstone.seq > since)
            )
            or 0
        )
        vectors = int(
            session.scalar(
                sa.select(sa.func.count())
                .select_from(KbChunk)
                .where(KbChunk.generation == gen.id, KbChunk.vector.is_not(None))
            )
            or 0
        )
    total = vectors + tombstones
    return {
        "vectors": vectors,
        "tombstones": tombstones,
        "tombstone_ratio": round(tombstones / total, 4) if total else 0.0,
        "compacted_seq": since,
        "last_vacuum": row.vacuumed_at.isoformat() if row is not None else None,
    }


def _all_vectors(kb: Indexes, gen: KbGeneration) -> tuple[npt.NDArray[np.uint64], Any]:
    with kb.store.session() as session:
        rows = session.execute(
            sa.select(KbChunk.id, KbChunk.vector).where(
                KbChunk.generation == gen.id, KbChunk.vector.is_not(None)
            )
        ).all()
    keys = np.asarray([r[0] for r in rows], dtype=np.uint64)
    if not rows:
        return keys, np.zeros((0, gen.dim), dtype=np.float32)
    blob = b"".join(bytes(r[1] or b"") for r in rows)
    vectors = np.frombuffer(blob, dtype="<f4").reshape(len(rows), gen.dim).astype(np.float32)
    return keys, vectors


def exact_top_k(keys: npt.NDArray[np.uint64], vectors: Any, queries: Any, k: int) -> list[set[int]]:
    """Exact cosine top-``k`` keys of each query (brute force)."""
    norms = np.linalg.norm(vectors, axis=1)
    norms[norms == 0.0] = 1.0
    unit = vectors / norms[:, None]
    out: list[set[int]] = []
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ unit.T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        out.extend({int(keys[j]) for j in row} for row in top)
    return out


def recall_probe(
    kb: Indexes,
    gen: KbGeneration,
    *,
    samples: int = 50,
    k: int = 10,
    seed: int = 0,
    noise: float = 0.05,
) -> float | None:
    """ANN recall@k against exact search on ``samples`` probe queries (None when empty)."""
    if samples < 1 or k < 1:
        raise InputError("the recall probe needs samples >= 1 and k >= 1", hint="e.g. 50 and 10")
    keys, vectors = _all_vectors(kb, gen)
    if len(keys) == 0:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(keys), size=min(samples, len(keys)), replace=False)
    queries = vectors[picks] + rng.normal(0.0, noise, size=(len(picks), gen.dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    kk = min(k, len(keys))
    exact = exact_top_k(keys, vectors, queries, kk)
    index = kb.index_for(gen)
    with kb.store.session() as session:
        kb.catch_up(session, gen.id)
    found = [{key for key, _ in index.search(q, kk)} for q in queries]
    return round(float(np.mean([len(a & b) / kk for a, b in zip(found, exact, strict=True)])), 4)


def health(kb: Indexes, collection: str | None = None, *, samples: int = 50) -> dict[str, Any]:
    """Tombstone ratio and recall probe of every live generation."""
    out: dict[str, Any] = {"generations": []}
    for gen in _live_generations(kb, collection):
        started = time.perf_counter()
        recall = recall_probe(kb, gen, samples=samples)
        out["generations"].append(
            {
                "collection": gen.collection,
                "generation": gen.id,
                "state": gen.state,
                "embedder": gen.embedder,
                **tombstone_ratio(kb, gen),
                "recall_at_10": recall,
                "probe_queries": samples,
                "probe_seconds": round(time.perf_counter() - started, 3),
            }
        )
    return out


def vacuum_generation(kb: Indexes, gen: KbGeneration) -> dict[str, Any]:
    """Rebuild one generation's ANN index online and swap it in; record the compaction."""
    started = time.perf_counter()
    before = tombstone_ratio(kb, gen)
    kb.index_for(gen)  # searches keep using this one until the swap
    fresh = AnnIndex(kb.index_dir(gen), gen.id, gen.dim, AnnParams.from_dict(gen.ann_params))
    with kb.store.session() as session:
        seq = int(session.scalar(sa.select(KbGeneration.seq).where(KbGeneration.id == gen.id)) or 0)
        fresh.rebuild(session, seq)
    with kb.store.session() as session:  # writes committed during the rebuild
        latest = int(
            session.scalar(sa.select(KbGeneration.seq).where(KbGeneration.id == gen.id)) or 0
        )
        fresh.catch_up(session, latest)
    kb.replace_index(gen.id, fresh)
    fresh.save()
    seconds = time.perf_counter() - started
    with kb.store.session(write=True) as session:
        write_lock(session, gen.collection)
        row = session.get(KbIndexMaintenance, gen.id)
        if row is None:
            row = KbIndexMaintenance(generation=gen.id)
            session.add(row)
        row.compacted_seq = latest
        row.vectors = len(fresh)
        row.vacuum_seconds = seconds
        row.vacuumed_at = utcnow()
    return {
        "collection": gen.collection,
        "generation": gen.id,
        "vectors": len(fresh),
        "tombstones_removed": before["tombstones"],
        "seconds": round(seconds, 3),
    }


def compact_storage(kb: Indexes) -> dict[str, Any]:
    """Merge the keyword index and give freed pages back (erased bytes disappear)."""
    started = time.perf_counter()
    engine = kb.store.engine
    raw = engine.raw_connection()
    try:
        if engine.dialect.name == "sqlite":
            cur = raw.cursor()
            cur.execute("INSERT INTO kb_chunks_fts(kb_chunks_fts) VALUES ('optimize')")
            cur.execute("INSERT INTO kb_chunks_fts_x(kb_chunks_fts_x) VALUES ('optimize')")
            cur.execute("VACUUM")
            run_text.rebuild(cur)  # VACUUM may renumber the rowids that index is keyed by
            cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cur.close()
        else:
            raw.commit()
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cur = raw.cursor()
            # FULL rewrites each table (and its TOAST table and indexes, the GIN keyword
            # index included) into new files and unlinks the old ones: plain VACUUM only
            # marks the dead tuples' space reusable, the erased bytes stay in the files.
            for table in (*_KB_TABLES, TERMS_TABLE):  # the keyword postings hold stems
                cur.execute(f"VACUUM (FULL, ANALYZE) {table}")
            cur.close()
            raw.driver_connection.autocommit = False  # type: ignore[union-attr]
    finally:
        raw.close()
    return {"backend": engine.dialect.name, "seconds": round(time.perf_counter() - started, 3)}


def vacuum(kb: Indexes, collection: str | None = None, *, storage: bool = True) -> dict[str, Any]:
    """Vacuum every live generation (of ``collection``), then the storage."""
    generations = [vacuum_generation(kb, gen) for gen in _live_generations(kb, collection)]
    out: dict[str, Any] = {"generations": generations}
    if storage:
        out["storage"] = compact_storage(kb)
    return out


def auto_vacuum(
    kb: Indexes,
    collection: str | None = None,
    *,
    threshold: float = DEFAULT_AUTO_VACUUM_THRESHOLD,
    storage: bool = True,
) -> dict[str, Any] | None:
    """Vacuum when some live generation's tombstone ratio passes ``threshold``."""
    if not 0.0 < threshold <= 1.0:
        raise InputError(f"threshold {threshold} is outside (0, 1]", hint="for example 0.2")
    ratios: Sequence[float] = [
        tombstone_ratio(kb, gen)["tombstone_ratio"] for gen in _live_generations(kb, collection)
    ]
    if not ratios or max(ratios) <= threshold:
        return None
    result = vacuum(kb, collection, storage=storage)
    result["triggered_by"] = {"threshold": threshold, "max_tombstone_ratio": max(ratios)}
    return result
