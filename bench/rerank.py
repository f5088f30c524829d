"""The reranking stage on the shared sets: nDCG@10 and latency with and without it.

    python bench/rerank.py --dataset ../shared/datasets/msmarco --json bench/results/rerank.json

No registry package ships an offline cross-encoder (see daytwo/knowledge/rerank.py), so
the reranker measured here is the scripted TEI-protocol double
(daytwo.testing.rerank_server, word overlap of query and passage) behind the real
client: the figures measure the stage's plumbing and its cost (an HTTP round trip on
loopback and the rescoring of ``--depth`` passages), not a cross-encoder's quality.
Keyword search (SQLite, hashing-384 embedder), first ``--depth`` hits reranked, k=10.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime  # noqa: F401  (must load before usearch)

from _common import add_lock_options, interleave, machine, measuring, write_result
from retrieval import doc_run, evaluate, load_beir


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--depth", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    add_lock_options(ap)
    args = ap.parse_args()

    from daytwo.knowledge import KnowledgeBase
    from daytwo.knowledge.rerank import TeiReranker
    from daytwo.store import Store
    from daytwo.testing.rerank_server import ScriptedRerankServer

    queries, qrels = load_beir(args.dataset)
    result: dict[str, Any] = {
        "dataset": args.dataset.name,
        "queries": len(queries),
        "reranker": "scripted TEI /rerank double (word overlap), not a cross-encoder",
        "depth": args.depth,
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory() as tmp, ScriptedRerankServer() as server:
        store = Store(f"sqlite:///{Path(tmp) / 'kb.db'}")
        store.upgrade()
        kb = KnowledgeBase(store, Path(tmp), embedder="hashing-384")
        kb.ingest_path(args.dataset, "bench")
        reranker = TeiReranker(server.url)

        def run(with_rerank: bool) -> tuple[dict[str, dict[str, float]], list[float]]:
            ranked, lat = {}, []
            for qid, text in queries.items():
                t0 = time.perf_counter()
                hits = kb.search(
                    "bench",
                    text,
                    "bench",
                    groups=("all",),
                    mode="bm25",
                    k=10,
                    reranker=reranker if with_rerank else None,
                    rerank_depth=args.depth,
                )
                lat.append(time.perf_counter() - t0)
                ranked[qid] = doc_run([(h.doc_id, h.score) for h in hits])
            return ranked, lat

        for name, flag in (("bm25", False), ("bm25_reranked", True)):
            result[name] = evaluate(qrels, run(flag)[0])
        with measuring(args.lock) as measured:
            latency = interleave(
                {
                    "bm25": lambda: float(np.median(run(False)[1]) * 1000),
                    "bm25_reranked": lambda: float(np.median(run(True)[1]) * 1000),
                },
                args.rounds,
            )
        result["latency_p50_ms"] = {**latency, "lock": measured}
        reranker.close()
        kb.close()
        store.dispose()
    write_result(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
