"""Delete 10/30/50% of a vector collection: ANN recall@10 and latency before, after, vacuumed.

Uses the knowledge layer's real paths: vectors stored as chunks in the database (the
system of record), the generation's usearch HNSW index, deletions through the write
path (``apply_writes``: tombstones), catch-up of a saved index file, and the online
``vacuum_generation`` (rebuild from the database + swap). Per deletion level:

* **after delete**: the index saved before any deletion, reopened and caught up from
  the database, so it carries exactly that share of tombstones;
* **after vacuum**: ``vacuum_generation`` (duration reported);
* **fresh build**: ``--fresh-builds`` independent indexes built from the surviving
  vectors, each in its own shuffled order — the target is after-vacuum recall within
  0.01 of their median. Builds of the same vectors in different orders differ by a few
  hundredths of recall on this data (the spread is reported): against one build, the
  verdict would be a coin toss.

Recall@10 is against exact brute-force search over the surviving vectors; queries are
stored vectors with Gaussian noise (the same queries at every stage). Latency is one
ANN query (``AnnIndex.search``, k=10), single-threaded, p50/p99. With ``--lock FILE`` only
the latency/recall stages hold the bench lock (at raised priority); building, deleting
and vacuuming run outside it (their wall and CPU seconds are reported).

    python bench/maintenance.py --json bench/results/maintenance.json [--size 200000] \
        [--lock /tmp/daytwo-bench.lock]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from _common import add_lock_options, measuring, run_locked, write_result
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.ann import AnnIndex, AnnParams, encode_vector
from daytwo.knowledge.ingest import apply_writes
from daytwo.knowledge.maintenance import exact_top_k, vacuum_generation
from daytwo.store import Store
from daytwo.store.tables.knowledge import KbChunk, KbGeneration

DIM = 384
LEVELS = (0.1, 0.3, 0.5)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """Run ``fn``; return its value, wall seconds and CPU seconds (all threads)."""
    wall, cpu = time.perf_counter(), _cpu()
    value = fn()
    return value, round(time.perf_counter() - wall, 2), round(_cpu() - cpu, 2)


def _stage(
    index: AnnIndex, queries: Any, exact: list[set[int]], lock: Path | None, k: int = 10
) -> dict[str, Any]:
    with measuring(lock) as measured:
        out = _measure(index, queries, exact, k)
    return {**out, "load_avg": measured["load_avg_start"]}


def _measure(index: AnnIndex, queries: Any, exact: list[set[int]], k: int) -> dict[str, Any]:
    for q in queries[:20]:  # warm-up
        index.search(q, k)
    found: list[set[int]] = []
    times: list[float] = []
    for q in queries:
        started = time.perf_counter()
        hits = index.search(q, k)
        times.append((time.perf_counter() - started) * 1000.0)
        found.append({key for key, _ in hits})
    recall = float(np.mean([len(a & b) / k for a, b in zip(found, exact, strict=True)]))
    return {
        "recall_at_10": round(recall, 4),
        "p50_ms": round(float(np.percentile(times, 50)), 3),
        "p99_ms": round(float(np.percentile(times, 99)), 3),
        "vectors": len(index),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, required=True, help="Where to write the results.")
    parser.add_argument("--size", type=int, default=200_000, help="Vectors in the collection.")
    parser.add_argument(
        "--queries",
        type=int,
        default=1000,
        help="Probe queries per stage (1000: a recall@10 standard error of about 0.003).",
    )
    parser.add_argument(
        "--fresh-builds", type=int, default=3, help="Fresh builds per level (median judged)."
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", choices=("clustered", "random"), default="clustered")
    parser.add_argument("--clusters", type=int, default=200, help="Topics of clustered data.")
    add_lock_options(parser)
    args = parser.parse_args()
    write_result(args.json, run_locked(args, run))
    return 0


def run(args: argparse.Namespace, lock: Path | None) -> dict[str, Any]:
    """The whole benchmark; ``lock`` is taken around each measurement stage."""
    rng = np.random.default_rng(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="daytwo-maint-"))
    started_all = time.perf_counter()
    try:
        store = Store(f"sqlite:///{workdir / 'bench.db'}")
        store.upgrade()
        kb = KnowledgeBase(store, workdir / "data", embedder="hashing-384")
        gen = kb.ensure_collection("vectors")
        if args.data == "random":
            vectors = rng.standard_normal((args.size, DIM)).astype(np.float32)
        else:  # clusters, like embeddings of documents on a few hundred topics
            centers = rng.standard_normal((args.clusters, DIM)).astype(np.float32)
            labels = rng.integers(0, args.clusters, size=args.size)
            vectors = centers[labels] + rng.normal(0.0, 1.0, size=(args.size, DIM))
            vectors = vectors.astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        t0 = time.perf_counter()
        with store.session() as session:
            session.execute(sa.update(KbGeneration).where(KbGeneration.id == gen.id).values(seq=1))
            for start in range(0, args.size, 5000):
                session.execute(
                    sa.insert(KbChunk),
                    [
                        {
                            "generation": gen.id,
                            "collection": "vectors",
                            "doc_id": f"v{i}",
                            "chunk_id": f"v{i}#0",
                            "ordinal": 0,
                            "title": "",
                            "text": f"v{i}",
                            "token_count": 1,
                            "vector": encode_vector(vectors[i]),
                            "seq": 1,
                        }
                        for i in range(start, min(start + 5000, args.size))
                    ],
                )
            keys = np.asarray(
                session.scalars(
                    sa.select(KbChunk.id).where(KbChunk.generation == gen.id).order_by(KbChunk.id)
                ).all(),
                dtype=np.uint64,
            )
        load_seconds = time.perf_counter() - t0
        print(f"stored {args.size} vectors in {load_seconds:.1f}s", file=sys.stderr)
        index, build_seconds, build_cpu = _timed(lambda: kb.index_for(gen))  # from the DB
        index.save()
        print(f"built the index in {build_seconds:.1f}s ({build_cpu:.1f}s CPU)", file=sys.stderr)
        base = workdir / "base"
        shutil.copytree(index.directory, base)
        picks = rng.choice(args.size, size=args.queries, replace=False)
        queries = vectors[picks] + rng.normal(0.0, 0.1, size=(args.queries, DIM))
        queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
        before = _stage(index, queries, exact_top_k(keys, vectors, queries, 10), lock)
        print(f"before: {before}", file=sys.stderr)
        order = rng.permutation(args.size)
        deleted = 0
        levels: list[dict[str, Any]] = []
        for level in LEVELS:
            upto = round(level * args.size)
            ids = [f"v{i}" for i in order[deleted:upto]]
            for start in range(0, len(ids), 2000):
                apply_writes(kb, "vectors", deletes=ids[start : start + 2000])
            deleted = upto
            alive = np.sort(order[deleted:])
            exact = exact_top_k(keys[alive], vectors[alive], queries, 10)
            # The file saved before any deletion, reopened and caught up: all tombstones.
            shutil.rmtree(index.directory)
            shutil.copytree(base, index.directory)
            kb.forget_index(gen.id)
            tombstoned = kb.index_for(gen)
            after_delete = _stage(tombstoned, queries, exact, lock)
            _, vacuum_seconds, vacuum_cpu = _timed(lambda: vacuum_generation(kb, gen))
            after_vacuum = _stage(kb.index_for(gen), queries, exact, lock)
            fresh_stages: list[dict[str, Any]] = []
            for build in range(args.fresh_builds):
                fresh = AnnIndex(
                    workdir / f"fresh{level}-{build}",
                    gen.id,
                    DIM,
                    AnnParams.from_dict(gen.ann_params),
                )
                shuffled = rng.permutation(alive)
                _, fresh_seconds, fresh_cpu = _timed(
                    lambda: fresh.apply((), keys[shuffled], vectors[shuffled], 0)  # noqa: B023
                )
                stage = _stage(fresh, queries, exact, lock)
                fresh_stages.append({**stage, "seconds": fresh_seconds, "cpu_seconds": fresh_cpu})
            fresh_recalls = sorted(f["recall_at_10"] for f in fresh_stages)
            fresh_median = float(np.median(fresh_recalls))
            gap = round(fresh_median - after_vacuum["recall_at_10"], 4)
            entry = {
                "deleted_fraction": level,
                "tombstones_in_index": round((args.size - len(tombstoned)) / args.size, 4),
                "after_delete": after_delete,
                "after_vacuum": after_vacuum,
                "vacuum_seconds": vacuum_seconds,
                "vacuum_cpu_seconds": vacuum_cpu,
                "fresh_builds": fresh_stages,
                "fresh_recall_at_10": {
                    "median": fresh_median,
                    "min": fresh_recalls[0],
                    "max": fresh_recalls[-1],
                },
                "recall_gap_vacuum_vs_fresh": gap,
                "target_met": gap <= 0.01,
            }
            levels.append(entry)
            print(json.dumps(entry), file=sys.stderr)
        kb.close()
        store.dispose()
        result = {
            "benchmark": "maintenance",
            "size": args.size,
            "dim": DIM,
            "data": (
                "random unit vectors (Gaussian)"
                if args.data == "random"
                else f"{args.clusters} Gaussian clusters (center + N(0, 1) per dim), unit norm"
            )
            + "; queries = stored vectors + N(0, 0.1) noise",
            "ann_params": gen.ann_params,
            "queries": args.queries,
            "store_seconds": round(load_seconds, 2),
            "build_seconds": build_seconds,
            "build_cpu_seconds": build_cpu,
            "build_vectors_per_s": round(args.size / build_seconds, 1),
            "cpus": os.cpu_count(),
            "before_delete": before,
            "levels": levels,
            "fresh_builds_per_level": args.fresh_builds,
            "target": "after-vacuum recall@10 within 0.01 of the median fresh build "
            "(gap = median fresh - vacuumed)",
            "target_met": all(e["target_met"] for e in levels),
            "total_seconds": round(time.perf_counter() - started_all, 1),
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


if __name__ == "__main__":
    sys.exit(main())
