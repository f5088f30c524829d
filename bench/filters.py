"""Filtered vs unfiltered search latency on a shared data set (issue 20).

    python bench/filters.py --dataset ../shared/datasets/msmarco \\
        [--db postgresql+psycopg://...] --json bench/results/filters.json

The corpus gets synthetic typed metadata (``lang`` one of five, ``year`` 2000-2024,
``published`` an ISO date); the data set's queries run unfiltered and with three
filters of falling selectivity: an equality (~20 % of documents), a date range
(~10 %), and a compound must/must_not (~1.5 %). Each is timed warm (the permitted set
for the filter is cached, as for a repeated filter) and cold (the cache dropped before
every query, so each query pays for the SQL that computes the filtered set). Vectors
come from the hashing embedder: the dense half's latency is real, its relevance is not
the point here. Interleaved rounds (bench/_common.py), median and spread, load average.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import onnxruntime  # noqa: F401  (must load before usearch)

from _common import add_lock_options, beir_rows, interleave, machine, measuring, write_result

FILTERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "eq_20pct": {"must": [{"key": "lang", "match": {"value": "de"}}]},
    "date_range_10pct": {
        "must": [{"key": "published", "range": {"gte": "2010-01-01", "lt": "2012-07-01"}}]
    },
    "compound_1pct": {
        "must": [
            {"key": "lang", "match": {"value": "de"}},
            {"key": "year", "range": {"gte": 2023}},
        ],
        "must_not": [{"key": "published", "range": {"lt": "2023-03-01"}}],
    },
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--db", default=None, help="store URL (default: a temporary SQLite file)")
    ap.add_argument("--docs", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--modes", default="bm25,hybrid")
    ap.add_argument("--json", type=Path, default=None)
    add_lock_options(ap)
    args = ap.parse_args()

    from daytwo.knowledge import HashingEmbedder, KnowledgeBase
    from daytwo.knowledge.indexes import AllowedCache
    from daytwo.knowledge.search import SearchRequest
    from daytwo.store import Store

    tmp = Path(tempfile.mkdtemp(prefix="bench-filters-"))
    store = Store(args.db or f"sqlite:///{tmp / 'kb.db'}")
    store.upgrade()
    kb = KnowledgeBase(store, tmp / "data", embedder=HashingEmbedder())
    rng = random.Random(7)
    docs = []
    for row in beir_rows(args.dataset, "corpus.jsonl", args.docs):
        year = rng.randint(2000, 2024)
        docs.append(
            {
                "id": row["_id"],
                "title": row.get("title", ""),
                "text": row["text"],
                "metadata": {
                    "lang": rng.choice(["en", "de", "fr", "es", "it"]),
                    "year": year,
                    "published": f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                },
            }
        )
    corpus = tmp / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps(d) for d in docs), encoding="utf-8")
    started = time.perf_counter()
    kb.ingest_path(corpus, "bench")
    ingest_s = time.perf_counter() - started
    queries = [row["text"] for row in beir_rows(args.dataset, "queries.jsonl")]

    def matching(flt: dict[str, Any] | None) -> int:
        request = SearchRequest("bench", "the", "bench", ("staff",), "bm25", 1, flt)
        with kb.store.session() as session:
            from daytwo.knowledge.search import _permitted, generation, read_state

            state = read_state(kb, session, "bench")
            gen = generation(kb, session, state.active)
            return int(
                _permitted(
                    kb,
                    session,
                    gen.id,
                    state.seqs[gen.id],
                    "bench",
                    ["group:everyone", "group:staff", "user:bench"],
                    request.filter,
                ).keys.size
            )

    sizes = {name: matching(flt) for name, flt in FILTERS.items()}

    def contender(mode: str, flt: dict[str, Any] | None, cold: bool) -> Any:
        def run() -> float:
            total = 0.0
            for query in queries:
                if cold:
                    kb.allowed_cache = AllowedCache()
                request = SearchRequest("bench", query, "bench", ("staff",), mode, 10, flt)
                t0 = time.perf_counter()
                hits = kb.run(request)
                total += time.perf_counter() - t0
                if mode != "bm25" and len(hits) < 10:
                    raise SystemExit(f"{mode} {flt}: {len(hits)} hits < 10")
            return total / len(queries) * 1000.0

        return run

    contenders = {
        f"{mode}/{name}/{'cold' if cold else 'warm'}": contender(mode, flt, cold)
        for mode in args.modes.split(",")
        for name, flt in FILTERS.items()
        for cold in (False, True)
    }
    with measuring(args.lock) as measured:
        timed = interleave(contenders, rounds=args.rounds)
    ratios = {}
    for name, figures in timed["contenders"].items():
        mode, _flt, state = name.split("/")
        base = timed["contenders"][f"{mode}/none/{state}"]["median"]
        ratios[name] = round(figures["median"] / base, 3) if base else None
    result = {
        "benchmark": "filters",
        "dataset": args.dataset.name,
        "backend": store.engine.dialect.name,
        "documents": len(docs),
        "ingest_seconds": round(ingest_s, 1),
        "queries": len(queries),
        "matching_chunks": sizes,
        "ms_per_query": timed,
        "ratio_to_unfiltered": ratios,
        "lock": measured,
        "machine": machine(),
    }
    kb.close()
    store.dispose()
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
