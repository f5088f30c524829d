"""Position-swapped pairwise judging with the real local model (SmolLM2 on llama.cpp).

Builds pairs where one answer is known to be better, then asks the judge each
pair in both orders ([A,B] and [B,A]):

* sample golden set of the support agent: expected answer vs a corrupted one
  (numbers changed, yes/no flipped, or another case's answer);
* MS MARCO and business-reports (``/work/shared/datasets``): the most relevant
  judged passage for a query vs a random unjudged passage.

Reports single-order accuracy (what a judge asked once would score), the
consistency rate under the swap, accuracy counting only consistent verdicts,
and the rate at which the judge picks whatever is shown first.

    python bench/judges.py --json bench/results/judges.json [--queries-per-dataset 50]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

from _common import beir_rows
from daytwo.evals.cases import parse_cases_jsonl
from daytwo.evals.judges import PAIRWISE, PairwiseJudge, PairwiseVerdict, summarize_pairwise
from daytwo.evals.samples import sample_golden_path
from daytwo.models import LocalModelServer, LocalModelSettings, OpenAICompatProvider

DATASETS = Path("/work/shared/datasets")
MAX_CHARS = 360


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rsplit(" ", 1)[0] + " …"


def _corrupt(answer: str, other: str, rng: random.Random) -> list[tuple[str, str]]:
    """Corrupted versions of ``answer`` with the kind of corruption."""
    out: list[tuple[str, str]] = []
    if re.search(r"\d", answer):
        changed = re.sub(r"\d+", lambda m: str(int(m.group()) * 3 + 1), answer)
        out.append(("numbers", changed))
    if answer.startswith("Yes"):
        out.append(("negation", "No" + answer[3:]))
    elif answer.startswith("No"):
        out.append(("negation", "Yes" + answer[2:]))
    out.append(("wrong_answer", other))
    return out


def sample_pairs(rng: random.Random) -> list[dict[str, Any]]:
    cases = [
        c
        for c in parse_cases_jsonl(sample_golden_path().read_text())
        if c.expected_output and not c.output_schema
    ]
    pairs = []
    for i, case in enumerate(cases):
        other = cases[(i + 5) % len(cases)].expected_output or ""
        for kind, bad in _corrupt(case.expected_output or "", other, rng):
            pairs.append(
                {
                    "source": "sample",
                    "kind": kind,
                    "question": case.input,
                    "good": case.expected_output,
                    "bad": bad,
                }
            )
    return pairs


def retrieval_pairs(
    name: str, n: int, rng: random.Random, per_query: int = 2
) -> list[dict[str, Any]]:
    root = DATASETS / name
    corpus = {
        doc["_id"]: (doc.get("title", "") + " " + doc["text"]).strip()
        for doc in beir_rows(root, "corpus.jsonl")
    }
    queries = {q["_id"]: q["text"] for q in beir_rows(root, "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    for line in (root / "qrels" / "test.tsv").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or not parts[2].strip().isdigit():
            continue
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    ids = sorted(corpus)
    pairs = []
    for qid in sorted(qrels)[:n]:
        if qid not in queries:
            continue
        judged = qrels[qid]
        ranked = sorted((d for d in sorted(judged) if d in corpus), key=lambda d: -judged[d])
        for good in ranked[:per_query]:
            bad = rng.choice(ids)
            while bad in judged:
                bad = rng.choice(ids)
            pairs.append(
                {
                    "source": name,
                    "kind": "irrelevant_passage",
                    "question": queries[qid],
                    "good": _clip(corpus[good]),
                    "bad": _clip(corpus[bad]),
                }
            )
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", dest="json_out", type=Path, help="write the results here")
    parser.add_argument("--queries-per-dataset", type=int, default=50)
    parser.add_argument("--pairs-per-query", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    pairs = sample_pairs(rng)
    for name in ("msmarco", "business-reports"):
        pairs += retrieval_pairs(name, args.queries_per_dataset, rng, args.pairs_per_query)
    # The known-better answer is shown first in half of the pairs (seeded), so a
    # judge that always picks one position scores 50 % single-order.
    truth = []
    for p in pairs:
        good_first = rng.random() < 0.5
        p["a"], p["b"] = (p["good"], p["bad"]) if good_first else (p["bad"], p["good"])
        truth.append("a" if good_first else "b")
    settings = LocalModelSettings(n_ctx=2048, threads=2)
    started = time.perf_counter()
    verdicts: list[PairwiseVerdict] = []
    with LocalModelServer(settings) as server:
        provider = OpenAICompatProvider(server.base_url, model="smollm2", timeout=300)
        judge = PairwiseJudge(provider, PAIRWISE)
        for i, p in enumerate(pairs):
            verdicts.append(judge.compare(p["question"], p["a"], p["b"]))
            if (i + 1) % 10 == 0:
                print(f"{i + 1}/{len(pairs)} pairs judged", file=sys.stderr)
        provider.close()
        fingerprint = settings.fingerprint()
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "benchmark": "judges",
        "judge": {
            "name": PAIRWISE.name,
            "version": PAIRWISE.version,
            "prompt_sha256": PAIRWISE.prompt_hash,
            "model": "SmolLM2-135M-Instruct Q4_1 (llama.cpp/xllamacpp)",
            "weights_sha256": fingerprint["weights_sha256"],
            "temperature": 0.0,
        },
        "seed": args.seed,
        "seconds": round(seconds, 1),
        "calls_per_second": round(2 * len(pairs) / seconds, 2),
        "overall": summarize_pairwise(verdicts, truth),
        "by_source": {},
    }
    for source in sorted({p["source"] for p in pairs}):
        idx = [i for i, p in enumerate(pairs) if p["source"] == source]
        result["by_source"][source] = summarize_pairwise(
            [verdicts[i] for i in idx], [truth[i] for i in idx]
        )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
