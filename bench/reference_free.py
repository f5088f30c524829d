"""Agreement of the reference-free metrics with labels, with the real local judge (SmolLM2).

Retrieval side (human labels): MS MARCO queries from ``/work/shared/datasets/msmarco``;
each query's top ``--depth`` passages by all-MiniLM-L6-v2 are judged relevant or not by
the judge, and compared with the TREC-DL judgements (grade >= 2 relevant; grade 1
"related" and unjudged passages not relevant). ``--pool corpus`` ranks the whole
5,000-passage corpus; ``--pool judged`` (cheaper on a loaded machine) ranks the query's
judged passages plus 30 random others, so hard negatives (grade 1) are over-represented. Reported:
per-passage agreement and Cohen's kappa, and per query the judge's context precision
and pooled context recall@k against the same formulas on the human labels.

Answer side (labels written by the refmetrics helper, see bench/data/README.md): per
claim, the faithfulness verdict (supported by its nearest passage) and the answer
relevancy verdict against the labels; semantic similarity's ROC AUC separating
equivalent from non-equivalent answers.

    python bench/reference_free.py --json bench/results/reference_free.json [--queries 15]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from _common import beir_rows, load_avg, machine, write_result
from daytwo.evals.bindings import open_chat_model
from daytwo.evals.judges import label_agreement
from daytwo.evals.reference_free import (
    RefFreeJudge,
    average_precision,
    pooled_recall,
    prompt_version,
    semantic_similarity,
    split_claims,
)
from daytwo.knowledge.embedders import get_embedder

DATASET = Path("/work/shared/datasets/msmarco")
FIXTURE = Path(__file__).parent / "data" / "reference_free_labelled.jsonl"


def _spearman(a: list[float], b: list[float]) -> float | None:
    if len(a) < 3 or len(set(a)) < 2 or len(set(b)) < 2:
        return None

    def ranks(x: list[float]) -> Any:
        order = np.argsort(x, kind="mergesort")
        r = np.empty(len(x))
        vals = np.asarray(x)[order]
        i = 0
        while i < len(x):
            j = i
            while j + 1 < len(x) and vals[j + 1] == vals[i]:
                j += 1
            r[order[i : j + 1]] = (i + j) / 2
            i = j + 1
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def _auc(scores: list[float], labels: list[bool]) -> float:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def retrieval_side(
    judge: RefFreeJudge,
    embedder: Any,
    n_queries: int,
    depth: int,
    k: int,
    pool: str,
    progress: Path | None = None,
) -> Any:
    corpus = beir_rows(DATASET, "corpus.jsonl")
    queries = beir_rows(DATASET, "queries.jsonl")
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATASET / "qrels" / "test.tsv").open():
        q, d, g = line.split("\t")
        if q != "query-id":
            qrels.setdefault(q, {})[d] = int(g)
    queries = [q for q in queries if q["_id"] in qrels][:n_queries]
    texts = [(c.get("title", "") + " " + c["text"]).strip() for c in corpus]
    position = {c["_id"]: i for i, c in enumerate(corpus)}
    rng = random.Random(0)
    t0 = time.perf_counter()
    if pool == "corpus":
        candidates = {q["_id"]: list(range(len(corpus))) for q in queries}
    else:
        candidates = {
            q["_id"]: sorted(
                {position[d] for d in qrels[q["_id"]] if d in position}
                | set(rng.sample(range(len(corpus)), 30))
            )
            for q in queries
        }
    needed = sorted({i for c in candidates.values() for i in c})
    vecs = np.asarray(embedder.embed([texts[i] for i in needed]), dtype=np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    row_of = {i: r for r, i in enumerate(needed)}
    embed_s = time.perf_counter() - t0
    verdicts: list[str] = []
    human: list[str] = []
    per_query = []
    calls_s = 0.0
    for q in queries:
        qv = np.asarray(embedder.embed([q["text"]])[0], dtype=np.float64)
        cand = candidates[q["_id"]]
        sims = vecs[[row_of[i] for i in cand]] @ (qv / np.linalg.norm(qv))
        top = [cand[int(j)] for j in np.argsort(-sims)[:depth]]
        ids = [corpus[int(i)]["_id"] for i in top]
        t1 = time.perf_counter()
        rows = judge.passage_verdicts(q["text"], [texts[int(i)] for i in top], ids)
        calls_s += time.perf_counter() - t1
        labels = [qrels[q["_id"]].get(d, 0) >= 2 for d in ids]
        judged = [r["relevant"] for r in rows]
        for j, h in zip(judged, labels, strict=True):
            verdicts.append("failure" if j is None else ("relevant" if j else "not"))
            human.append("relevant" if h else "not")
        flags = [bool(j) for j in judged]
        per_query.append(
            {
                "query": q["_id"],
                "judge_context_precision": average_precision(flags),
                "human_context_precision": average_precision(labels),
                "judge_context_recall": pooled_recall(flags, k),
                "human_context_recall": pooled_recall(labels, k),
                "judge_relevant": sum(flags),
                "human_relevant": sum(labels),
                "failures": sum(1 for j in judged if j is None),
                "passages": ids,
                "judge": judged,
                "human": labels,
            }
        )
        if progress is not None:  # a loaded machine may not finish: keep each query's verdicts
            with progress.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(per_query[-1]) + "\n")
    cp_j = [r["judge_context_precision"] for r in per_query]
    cp_h = [r["human_context_precision"] for r in per_query]
    both = [
        (r["judge_context_recall"], r["human_context_recall"])
        for r in per_query
        if r["judge_context_recall"] is not None and r["human_context_recall"] is not None
    ]
    agree = label_agreement(verdicts, human)
    return {
        "dataset": "msmarco (TREC-DL judgements, grade >= 2 relevant)",
        "pool": pool,
        "queries": len(queries),
        "depth": depth,
        "k": k,
        "passages_judged": len(verdicts),
        "passage_agreement": round(agree["agreement"], 4),
        "passage_kappa": None if agree["kappa"] is None else round(agree["kappa"], 4),
        "judge_relevant_rate": round(verdicts.count("relevant") / len(verdicts), 4),
        "human_relevant_rate": round(human.count("relevant") / len(human), 4),
        "judge_failures": verdicts.count("failure"),
        "context_precision": {
            "judge_mean": round(float(np.mean(cp_j)), 4),
            "human_mean": round(float(np.mean(cp_h)), 4),
            "mean_abs_diff": round(float(np.mean(np.abs(np.subtract(cp_j, cp_h)))), 4),
            "spearman": _round(_spearman(cp_j, cp_h)),
        },
        "context_recall": {
            "queries_defined_for_both": len(both),
            "mean_abs_diff": round(float(np.mean([abs(a - b) for a, b in both])), 4)
            if both
            else None,
            "spearman": _round(_spearman([a for a, _ in both], [b for _, b in both])),
        },
        "embed_s": round(embed_s, 1),
        "judge_s_per_passage": round(calls_s / max(1, len(verdicts)), 3),
        "per_query": per_query,
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def answer_side(judge: RefFreeJudge, embedder: Any) -> Any:
    items = [json.loads(line) for line in FIXTURE.open()]
    f_v, f_h, r_v, r_h, sims, eq = [], [], [], [], [], []
    for it in items:
        claims = split_claims(it["answer"])
        assert [c["text"] for c in it["claims"]] == claims, it["id"]
        faith = judge.faithfulness(it["answer"], it["passages"], [])
        rel = judge.answer_relevancy(it["question"], it["answer"])
        for row, lab in zip(faith.evidence["claims"], it["claims"], strict=True):
            f_v.append("failure" if row["supported"] is None else str(row["supported"]))
            f_h.append(str(lab["supported"]))
        for row, lab in zip(rel.evidence["claims"], it["claims"], strict=True):
            r_v.append("failure" if row["relevant"] is None else str(row["relevant"]))
            r_h.append(str(lab["relevant"]))
        sims.append(semantic_similarity(embedder, it["answer"], it["expected"]))
        eq.append(bool(it["equivalent"]))
    fa, ra = label_agreement(f_v, f_h), label_agreement(r_v, r_h)

    def pack(a: dict[str, Any], v: list[str], h: list[str]) -> dict[str, Any]:
        return {
            "claims": a["labelled"],
            "agreement": round(a["agreement"], 4),
            "kappa": _round(a["kappa"]),
            "judge_yes_rate": round(v.count("True") / len(v), 4),
            "label_yes_rate": round(h.count("True") / len(h), 4),
            "judge_failures": v.count("failure"),
        }

    best = max(
        (sum((s >= t) == y for s, y in zip(sims, eq, strict=True)) / len(eq), t)
        for t in sorted(set(sims))
    )
    return {
        "fixture": str(FIXTURE.relative_to(Path(__file__).parent.parent)),
        "labelled_by": "the refmetrics helper (an AI agent), by construction; "
        "see bench/data/README.md",
        "items": len(items),
        "faithfulness_claims": pack(fa, f_v, f_h),
        "answer_relevancy_claims": pack(ra, r_v, r_h),
        "semantic_similarity": {
            "pairs": len(eq),
            "roc_auc": round(_auc(sims, eq), 4),
            "best_threshold_accuracy": round(best[0], 4),
            "best_threshold": round(best[1], 4),
            "mean_equivalent": round(
                float(np.mean([s for s, y in zip(sims, eq, strict=True) if y])), 4
            ),
            "mean_not_equivalent": round(
                float(np.mean([s for s, y in zip(sims, eq, strict=True) if not y])), 4
            ),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--depth", type=int, default=10)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--model", default="local", help="'local' or URL#model")
    parser.add_argument("--pool", choices=("corpus", "judged"), default="corpus")
    parser.add_argument("--part", choices=("answers", "retrieval", "both"), default="both")
    parser.add_argument(
        "--progress", type=Path, default=None, help="Append each query's verdicts here (JSONL)."
    )
    args = parser.parse_args()
    random.seed(0)
    embedder = get_embedder("minilm-l6-int8")
    started = time.perf_counter()
    load_before = load_avg()
    with ExitStack() as stack:
        chat, label = open_chat_model(args.model, stack)
        judge = RefFreeJudge(chat, embedder)
        answers = answer_side(judge, embedder) if args.part != "retrieval" else None
        print(json.dumps(answers, indent=2), file=sys.stderr)
        retrieval = (
            retrieval_side(
                judge, embedder, args.queries, args.depth, args.k, args.pool, args.progress
            )
            if args.part != "answers"
            else None
        )
    write_result(
        args.json,
        {
            "bench": "reference_free",
            "judge_model": label,
            "judge_prompts": prompt_version(),
            "embedder": "minilm-l6-int8",
            "answer_side": answers,
            "retrieval_side": retrieval,
            "wall_s": round(time.perf_counter() - started, 1),
            "load_avg_before": load_before,
            "load_avg_after": load_avg(),
            "machine": machine(),
        },
    )


if __name__ == "__main__":
    main()
