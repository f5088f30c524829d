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
import json
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

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
K = 100


def synthetic_corpus(source: Path, target: Path, total: int, seed: int = 20) -> int:
    """Write ``corpus.jsonl`` of the real passages plus distractors up to ``total``."""
    with source.open(encoding="utf-8") as fh:  # not splitlines(): passages hold U+2028
        rows = [json.loads(line) for line in fh if line.strip()]
    words = [str(r["text"]).split() for r in rows]
    rng = random.Random(seed)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8") as out:
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
    return max(total, len(rows))


def pg_schema_url(schema: str) -> str:
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    admin.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


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
    from daytwo.knowledge import KnowledgeBase
    from daytwo.store import Store

    out: dict[str, Any] = {}
    kbs: dict[str, Any] = {}
    schema = f"bench_kb_backends_{name}"
    urls = {"sqlite": f"sqlite:///{workdir / (name + '.db')}", "postgresql": pg_schema_url(schema)}
    for backend, url in urls.items():
        store = Store(url)
        store.upgrade()
        kb = KnowledgeBase(store, workdir / f"{name}-{backend}", embedder=args.embedder)
        started = time.perf_counter()
        report = kb.ingest_path(corpus_dir, "bench")
        out[backend] = {
            "chunks": report.chunks,
            "ingest_s": round(time.perf_counter() - started, 1),
        }
        print(name, backend, out[backend], file=sys.stderr, flush=True)
        kbs[backend] = kb

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
    if not args.keep_pg:
        drop_schema(schema)
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
    add_lock_options(ap)
    args = ap.parse_args()
    queries, qrels = load_beir(args.dataset)
    result: dict[str, Any] = {
        "dataset": args.dataset.name,
        "queries": len(queries),
        "embedder": args.embedder,
        "k": K,
        "machine": machine(),
        "points": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if not args.skip_base:
            result["points"]["base"] = point("base", args.dataset, queries, qrels, args, workdir)
            write_result(args.json, result)  # kept should the scale point fail
        if args.scale:
            corpus = workdir / "scale" / "corpus.jsonl"
            total = synthetic_corpus(args.dataset / "corpus.jsonl", corpus, args.scale)
            result["points"][f"scale_{total}"] = point(
                "scale", corpus.parent, queries, qrels, args, workdir
            )
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
