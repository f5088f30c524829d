"""Keyword and hybrid search on SQLite beside PostgreSQL, at the data set's size and at scale.

    python bench/kb_backends.py --dataset ../shared/datasets/msmarco --scale 200000 \\
        --json bench/results/kb_backends.json

For each size point the same chunks go into a SQLite store and a PostgreSQL schema (the
same embedder, so the vector half of hybrid is the same usearch index on both); the
data set's queries then give nDCG@10 / recall@100 (ranx) per backend and mode, and the
latency contenders (p50 ms over all queries, one figure per round) run interleaved
(``bench/_common.py``: rotated rounds under the bench lock, median and spread, load).

Scale point (``--scale N``): the data set's own passages plus ``N - len(corpus)``
synthetic distractors. Passage ``syn-i`` is three word windows (10 to 30 words each)
cut from three passages of the corpus drawn at random (seeded), joined: the vocabulary,
term frequencies and lengths of the real set, none of its judged passages. The qrels
stay those of the real set, so the scale point's nDCG says how both backends rank the
judged passages among 40x more text.

The embedder is ``hashing-384`` by default (MiniLM would need ~1 h per 200k chunks on
this machine): keyword figures do not depend on it; hybrid latency is measured with
its vectors, hybrid quality is not the point here (``bench/retrieval.py`` is).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime  # noqa: F401  (must load before usearch)
import sqlalchemy as sa

from _common import add_lock_options, interleave, machine, measuring, write_result
from retrieval import doc_run, evaluate, load_beir

# The database the PostgreSQL schemas go into: set DAYTWO_BENCH_PG_URL to keep long-lived
# scale stores out of the test database (e.g. .../bench after `createdb bench`).
PG_URL = os.environ.get("DAYTWO_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
K = 100
BACKENDS: tuple[str, ...] = ("sqlite", "postgresql")


def synthetic_corpus(source: Path, target: Path, total: int, seed: int = 20) -> int:
    """Write ``corpus.jsonl`` of the real passages plus distractors up to ``total``."""
    with source.open(encoding="utf-8") as fh:  # not splitlines(): passages hold U+2028
        rows = [json.loads(line) for line in fh if line.strip()]
    words = [str(r["text"]).split() for r in rows]
    rng = random.Random(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # written whole by an earlier run (renamed into place below)
        return max(total, len(rows))
    partial = target.with_name(f".{target.name}.{os.getpid()}")
    with partial.open("w", encoding="utf-8") as out:
        for r in rows:
            out.write(json.dumps(r) + "\n")
        for i in range(max(0, total - len(rows))):
            parts = []
            for _ in range(3):
                w = words[rng.randrange(len(words))]
                size = rng.randint(10, 30)
                start = rng.randrange(max(1, len(w) - size + 1))
                parts.append(" ".join(w[start : start + size]))
            out.write(json.dumps({"_id": f"syn-{i}", "title": "", "text": " ".join(parts)}) + "\n")
    partial.replace(target)
    return max(total, len(rows))


def pg_schema_url(schema: str, fresh: bool = True) -> str:
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        if fresh:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    admin.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def built(url: str) -> int:
    """Chunks a kept store of an earlier ``--build`` holds (0: none, or not finished)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            done = conn.exec_driver_sql("SELECT count(*) FROM kb_chunks").scalar()
    except sa.exc.DBAPIError:
        done = 0
    finally:
        engine.dispose()
    return int(done or 0)


def open_kb(
    name: str, backend: str, corpus_dir: Path, args: argparse.Namespace, workdir: Path
) -> tuple[Any, dict[str, Any]]:
    """The point's knowledge base on ``backend``: built now, or reused (``--workdir``)."""
    from daytwo.knowledge import KnowledgeBase
    from daytwo.store import Store

    schema = f"bench_kb_backends_{name}"
    marker = workdir / f"{name}-{backend}.built"
    reuse = args.workdir is not None and marker.exists()
    if backend == "sqlite":
        url = f"sqlite:///{workdir / (name + '.db')}"
        if not reuse:
            (workdir / f"{name}.db").unlink(missing_ok=True)
    else:
        url = pg_schema_url(schema, fresh=not reuse)
    store = Store(url)
    store.upgrade()
    kb = KnowledgeBase(store, workdir / f"{name}-{backend}", embedder=args.embedder)
    if reuse:
        info = json.loads(marker.read_text(encoding="utf-8"))
        info["reused"] = True
        if built(url) != info["chunks"]:
            raise SystemExit(f"error: {marker} does not match the store; build it again")
    else:
        started = time.perf_counter()
        report = kb.ingest_path(corpus_dir, "bench")
        info = {"chunks": report.chunks, "ingest_s": round(time.perf_counter() - started, 1)}
        if args.workdir is not None:
            marker.write_text(json.dumps(info), encoding="utf-8")
    print(name, backend, info, file=sys.stderr, flush=True)
    return kb, info


def drop_schema(schema: str) -> None:
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    admin.dispose()


def point(
    name: str,
    corpus_dir: Path,
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kbs: dict[str, Any] = {}
    urls = (args.build,) if args.build else BACKENDS
    for backend in urls:
        kbs[backend], out[backend] = open_kb(name, backend, corpus_dir, args, workdir)
        if args.build:
            kbs[backend].close()
            kbs[backend].store.dispose()
            return out

    def run(backend: str, mode: str) -> tuple[dict[str, dict[str, float]], list[float]]:
        kb = kbs[backend]
        ranked: dict[str, dict[str, float]] = {}
        lat: list[float] = []
        for qid, text in queries.items():
            t0 = time.perf_counter()
            hits = kb.search("bench", text, "bench", groups=("all",), mode=mode, k=K)
            lat.append(time.perf_counter() - t0)
            ranked[qid] = doc_run([(h.doc_id, h.score) for h in hits])
        return ranked, lat

    for backend in urls:
        for mode in ("bm25", "hybrid"):
            ranked, _lat = run(backend, mode)  # also the warm-up (index load, ACL cache)
            out[backend][mode] = evaluate(qrels, ranked)

    def timed(backend: str, mode: str) -> Callable[[], float]:
        return lambda: float(np.median(run(backend, mode)[1]) * 1000.0)

    contenders = {f"{b}_{m}": timed(b, m) for b in urls for m in ("bm25", "hybrid")}
    with measuring(args.lock) as measured:
        latency = interleave(contenders, args.rounds)
    out["latency_p50_ms"] = {**latency, "lock": measured}
    med = {n: c["median"] for n, c in latency["contenders"].items()}
    out["ratio_pg_to_sqlite"] = {
        m: round(med[f"postgresql_{m}"] / med[f"sqlite_{m}"], 2) for m in ("bm25", "hybrid")
    }
    out["ndcg10_pg_minus_sqlite"] = {
        m: round(out["postgresql"][m]["ndcg@10"] - out["sqlite"][m]["ndcg@10"], 4)
        for m in ("bm25", "hybrid")
    }
    out["targets"] = {
        "bm25_p50_pg_le_2x_sqlite": out["ratio_pg_to_sqlite"]["bm25"] <= 2.0,
        "bm25_ndcg10_within_0.01": abs(out["ndcg10_pg_minus_sqlite"]["bm25"]) <= 0.01,
    }
    for kb in kbs.values():
        kb.close()
        kb.store.dispose()
    if not args.keep_pg and args.workdir is None:
        drop_schema(f"bench_kb_backends_{name}")
    print(name, json.dumps({k: out[k] for k in ("ratio_pg_to_sqlite", "targets")}), file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--embedder", default="hashing-384")
    ap.add_argument("--scale", type=int, default=0, help="chunks of the scale point (0: none)")
    ap.add_argument("--skip-base", action="store_true", help="only the scale point")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep-pg", action="store_true", help="keep the PostgreSQL schemas")
    ap.add_argument(
        "--workdir",
        type=Path,
        help="keep the stores here (outside the repo, e.g. .cache/kb_backends) and reuse "
        "the ones an earlier run built (PostgreSQL: the bench_kb_backends_* schemas)",
    )
    ap.add_argument(
        "--build",
        choices=BACKENDS,
        help="with --workdir: only build this backend's stores (run one per backend, in "
        "parallel), then measure with a later run that reuses them",
    )
    add_lock_options(ap)
    args = ap.parse_args()
    if args.build and args.workdir is None:
        ap.error("--build needs --workdir")
    queries, qrels = load_beir(args.dataset)
    result: dict[str, Any] = {
        "dataset": args.dataset.name,
        "queries": len(queries),
        "embedder": args.embedder,
        "k": K,
        "machine": machine(),
        "points": {},
    }
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        if not args.skip_base:
            result["points"]["base"] = point("base", args.dataset, queries, qrels, args, workdir)
            write_result(args.json, result)  # kept should the scale point fail
        if args.scale:
            corpus = workdir / f"scale-{args.scale}" / "corpus.jsonl"
            total = synthetic_corpus(args.dataset / "corpus.jsonl", corpus, args.scale)
            result["points"][f"scale_{total}"] = point(
                f"scale{args.scale}", corpus.parent, queries, qrels, args, workdir
            )
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
