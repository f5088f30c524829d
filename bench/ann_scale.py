"""ANN scale run: N random 384-d unit vectors in daytwo's ANN index, recall@10 vs exact.

Builds :class:`daytwo.knowledge.ann.AnnIndex` (the class every generation uses) with the
given HNSW parameters in one threaded batch per ``--batch`` vectors, computes exact
top-10 by brute force (numpy matmul, query blocks x all vectors), then sweeps
``expansion_search`` and reports recall@10, p50/p99 latency of one query (k=10) through
``AnnIndex.search`` and, on the same graph, through bare ``usearch`` (the wrapper's
overhead). Random high-dimensional vectors are the hard case for HNSW: no clusters.

Only the latency measurement takes ``--lock`` (``fcntl.flock``, raised priority); the
build and the ground truth run before it. ``--index-dir`` keeps the built index (and
its vectors) so a later run measures without rebuilding.

    python bench/ann_scale.py --size 1000000 --connectivity 32 --expansion-add 128 \\
        --lock /tmp/daytwo-bench.lock --json bench/results/ann_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime  # noqa: F401  (must load before usearch)

from _common import add_lock_options, measuring, run_locked, write_result
from daytwo.knowledge.ann import AnnIndex, AnnParams

DIM = 384
K = 10


def _vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), dtype=np.float32)
    for start in range(0, n, 100_000):
        part = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        part /= np.linalg.norm(part, axis=1, keepdims=True)
        out[start : start + len(part)] = part
    return out


def _truth(data: np.ndarray, queries: np.ndarray) -> np.ndarray:
    truth = np.zeros((len(queries), K), dtype=np.int64)
    for i in range(0, len(queries), 50):
        sims = queries[i : i + 50] @ data.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        truth[i : i + 50] = top
    return truth


def _pct(values: list[float], p: float) -> float:
    return round(float(np.percentile(values, p)) * 1000.0, 3)


def _sweep(
    index: AnnIndex, queries: np.ndarray, truth: np.ndarray, ef: int, warmup: int = 20
) -> dict[str, Any]:
    index.set_expansion_search(ef)
    bare = index._index  # the usearch object inside the wrapper: same graph, same ef
    for q in queries[:warmup]:
        index.search(q, K)
    ours: list[float] = []
    raw: list[float] = []
    hits = 0
    for i, q in enumerate(queries):
        # Alternate which one goes first: the second search of a query finds warm caches.
        if i % 2:
            t0 = time.perf_counter()
            bare.search(q, K, threads=1)  # the call AnnIndex.search makes
            raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        found = index.search(q, K)
        ours.append(time.perf_counter() - t0)
        if not i % 2:
            t0 = time.perf_counter()
            bare.search(q, K, threads=1)
            raw.append(time.perf_counter() - t0)
        hits += len({key for key, _ in found} & {int(t) for t in truth[i]})
    return {
        "expansion_search": ef,
        "recall_at_10": round(hits / (len(queries) * K), 4),
        "p50_ms": _pct(ours, 50),
        "p99_ms": _pct(ours, 99),
        "mean_ms": round(float(np.mean(ours)) * 1000.0, 3),
        "usearch_bare_p50_ms": _pct(raw, 50),
        "usearch_bare_p99_ms": _pct(raw, 99),
    }


def run(args: argparse.Namespace, lock: Path | None) -> dict[str, Any]:
    """Build (or load) the index, compute ground truth, sweep holding ``lock``."""
    params = AnnParams(
        connectivity=args.connectivity,
        expansion_add=args.expansion_add,
        expansion_search=args.ef[0],
        dtype=args.dtype,
    )
    workdir = args.index_dir or Path(tempfile.mkdtemp(prefix="daytwo-scale-"))
    index = AnnIndex(workdir, "scale", DIM, params)
    data_file = workdir / "vectors.npy"
    rng = np.random.default_rng(args.seed + 1)
    queries = rng.standard_normal((args.queries, DIM), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    build: dict[str, Any]
    if args.index_dir and index.load() and data_file.exists() and len(index) == args.size:
        data = np.load(data_file, mmap_mode="r")
        build = json.loads((workdir / "build.json").read_text(encoding="utf-8"))
        build["loaded_from_disk"] = True
        print(f"loaded {len(index)} vectors from {workdir}", file=sys.stderr, flush=True)
    else:
        data = _vectors(args.size, args.seed)
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for start in range(0, args.size, args.batch):
            stop = min(start + args.batch, args.size)
            keys = np.arange(start, stop, dtype=np.uint64)
            index.apply((), keys, data[start:stop], 0, threads=args.threads)
            elapsed = time.perf_counter() - wall0
            print(
                f"added {stop}/{args.size} in {elapsed:.0f}s ({stop / elapsed:.0f}/s)",
                file=sys.stderr,
                flush=True,
            )
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        build = {
            "seconds": round(wall, 1),
            "cpu_seconds": round(cpu, 1),
            "vectors_per_s": round(args.size / wall, 1),
            "vectors_per_cpu_s": round(args.size / cpu, 1),
            "threads": args.threads or os.cpu_count(),
            "batch": args.batch,
            "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        }
        if args.index_dir:
            index.save()
            np.save(data_file, data)
            (workdir / "build.json").write_text(json.dumps(build), encoding="utf-8")
    t0 = time.perf_counter()
    truth = _truth(np.asarray(data), queries)
    truth_seconds = time.perf_counter() - t0
    print(f"exact top-10 in {truth_seconds:.1f}s", file=sys.stderr, flush=True)
    sweep: list[dict[str, Any]] = []
    with measuring(lock) as measured:
        for ef in args.ef:
            row = _sweep(index, queries, truth, ef)
            sweep.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    meeting = [r for r in sweep if r["recall_at_10"] >= 0.95]
    best = min(meeting, key=lambda r: r["p50_ms"]) if meeting else None
    return {
        "benchmark": "ann_scale",
        "vectors": len(index),
        "dim": DIM,
        "data": "random unit vectors (standard normal, L2-normalised); queries likewise",
        "index": "daytwo.knowledge.ann.AnnIndex (usearch HNSW, metric cos)",
        "ann_params": {k: v for k, v in params.to_dict().items() if k != "expansion_search"},
        "queries": args.queries,
        "build": build,
        "exact_truth_seconds": round(truth_seconds, 1),
        "measurement": measured,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "sweep": sweep,
        "target": "recall@10 >= 0.95 at p50 <= 5 ms",
        "best_meeting_recall_0.95": best,
        "target_met": bool(best and best["p50_ms"] <= 5.0),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (also used by ``bench/retrieval.py --scale``)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--connectivity", type=int, default=32)
    ap.add_argument("--expansion-add", type=int, default=128)
    ap.add_argument("--dtype", default="f16", choices=("f32", "f16", "bf16", "i8"))
    ap.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256, 384, 512, 768, 1024])
    ap.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    ap.add_argument("--batch", type=int, default=100_000, help="vectors per add call")
    ap.add_argument("--seed", type=int, default=7)
    add_lock_options(ap)
    ap.add_argument("--index-dir", type=Path, help="keep/reuse the built index here")
    ap.add_argument("--json", type=Path, help="where to write the results")
    return ap.parse_args(argv)


def main() -> int:
    args = parse_args()
    write_result(args.json, run_locked(args, run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
