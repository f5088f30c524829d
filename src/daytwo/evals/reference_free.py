"""Reference-free RAG metrics: judged claim by claim and passage by passage, evidence kept.

What users of Ragas and DeepEval expect, computed with daytwo's configured judge model
(SmolLM2 locally, any OpenAI-compatible server) and the knowledge layer's embedder. No
metric here needs a label; each returns its score *and* the evidence behind it, stored
with the metric value (``eval_metrics.detail``), so a reviewer sees which claim failed
against which passage.

* ``faithfulness`` (groundedness): the answer is split into claims (its sentences); for
  each claim the passage most similar to it by embedding is found and the judge says
  whether that passage supports the claim. Score = supported claims / claims. Ragas and
  DeepEval ask the LLM to extract the claims; a 135M local model cannot do that
  reliably, so claims are sentences here, and the evidence names the passage checked.
* ``answer_relevancy``: each claim of the answer is judged as helping to answer the
  question or not (DeepEval's statement verdicts; Ragas instead embeds questions the
  LLM generates back from the answer). Score = relevant claims / claims.
* ``context_precision``: each retrieved passage is judged relevant to the question or
  not; the score is Ragas' average precision, ``Σ_k precision@k · v_k / Σ_k v_k`` over the
  retrieved passages (0 when none is relevant). Ragas' reference-free variant judges
  against the response; here the question is used, which is what the human relevance
  judgements it is validated against describe.
* ``context_recall``: without labels the relevant set is unknown, so recall is pooled
  (as TREC estimates it): every passage the agent retrieved is judged, and the score is
  the relevant passages in the first ``k`` over the relevant passages retrieved at any
  depth. It needs a retrieval deeper than ``k``; otherwise, or when no passage is
  relevant, it is undefined (``None``, shown as missing) rather than a trivial 1.0.
* ``semantic_similarity``: cosine similarity of the answer's and the expected answer's
  embeddings (the configured embedder, all-MiniLM-L6-v2 by default), clipped to [0, 1].

A judge reply that does not parse goes through :func:`daytwo.evals.judges.ask_json`'s
repair ladder; if any verdict of a metric still fails, the metric is ``None`` with the
failure in its evidence (never a partial score).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from daytwo.evals.dedup import Embedder
from daytwo.evals.judges import ChatModel, ask_json
from daytwo.models.types import Message

__all__ = [
    "CONTEXT_METRICS",
    "JUDGE_METRICS",
    "REFERENCE_FREE_METRICS",
    "RefFreeJudge",
    "Scored",
    "average_precision",
    "pooled_recall",
    "semantic_similarity",
    "split_claims",
]

JUDGE_METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
"""Metrics that need a judge model."""
CONTEXT_METRICS = frozenset({"faithfulness", "context_precision", "context_recall"})
"""Metrics that need the retrieved passages."""
REFERENCE_FREE_METRICS = (*JUDGE_METRICS, "semantic_similarity")
"""Every metric of this module (``eval run --metrics``)."""

_VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}},
    "required": ["verdict"],
}
_REPLY = 'Reply with only JSON: {"verdict": "yes"} or {"verdict": "no"}.'

PROMPTS: dict[str, tuple[str, str]] = {
    "support": (
        "You check whether a claim is supported by a passage. Answer yes only when the "
        f"passage states the claim or directly implies it. {_REPLY}",
        "Passage: {passage}\n\nClaim: {claim}\n\nIs the claim supported by the passage?",
    ),
    "relevant_claim": (
        f"You check whether a statement from an answer helps to answer a question. {_REPLY}",
        "Question: {question}\n\nStatement: {claim}\n\nDoes the statement help answer "
        "the question?",
    ),
    "relevant_passage": (
        "You check whether a passage is relevant to a question: it contains information "
        f"that helps answer it. {_REPLY}",
        "Question: {question}\n\nPassage: {passage}\n\nIs the passage relevant to the question?",
    ),
}
"""The three verdict prompts (system, user template); their hash is stored as the judge."""


def prompt_version() -> str:
    """``refree@1:<12 hex>`` of the prompts, recorded with every judged metric."""
    text = "\n---\n".join(f"{k}\n{s}\n{t}" for k, (s, t) in sorted(PROMPTS.items()))
    return "refree@1:" + hashlib.sha256(text.encode()).hexdigest()[:12]


_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")


def split_claims(text: str, *, max_claims: int = 12) -> list[str]:
    """The answer's claims: its sentences (and lines), trimmed; very short ones dropped."""
    parts = [p.strip(" -*•\t") for p in _SENTENCE.split(text or "")]
    return [p for p in parts if len(p.split()) >= 2 or any(ch.isdigit() for ch in p)][:max_claims]


def average_precision(relevant: Sequence[bool]) -> float:
    """Ragas context precision: ``Σ_k precision@k · v_k / Σ_k v_k`` (0.0 with no relevant)."""
    hits, total = 0, 0.0
    for k, rel in enumerate(relevant, start=1):
        if rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


def pooled_recall(relevant: Sequence[bool], k: int) -> float | None:
    """Relevant in the first ``k`` over relevant at any depth (None: too shallow or none)."""
    found = sum(relevant)
    if len(relevant) <= k or not found:
        return None
    return sum(relevant[:k]) / found


def _unit(vectors: Any) -> Any:
    vecs = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vecs / norms


def semantic_similarity(embedder: Embedder, answer: str | None, expected: str) -> float:
    """Cosine similarity of the two texts' embeddings, clipped to [0, 1]."""
    if not answer:
        return 0.0
    a, b = _unit(embedder.embed([answer, expected]))
    return float(min(1.0, max(0.0, float(a @ b))))


@dataclass(frozen=True)
class Scored:
    """One metric's value (None when undefined or a verdict failed) and its evidence."""

    name: str
    value: float | None
    evidence: dict[str, Any] = field(default_factory=dict)
    failed: bool = False


def _snippet(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RefFreeJudge:
    """Ask the verdicts the reference-free metrics need, each once per case."""

    def __init__(
        self, model: ChatModel, embedder: Embedder, *, seed: int = 0, max_chars: int = 1500
    ) -> None:
        self.model = model
        self.embedder = embedder
        self.seed = seed
        self.max_chars = max_chars  # a passage is cut here (small judges have small windows)
        self.version = prompt_version()

    def verdict(self, prompt: str, **fields: str) -> tuple[bool | None, str]:
        """(True/False, parse status) for one yes/no question; None when it failed."""
        system, template = PROMPTS[prompt]
        cut = {k: v[: self.max_chars] for k, v in fields.items()}
        parsed = ask_json(
            self.model,
            [
                Message(role="system", content=system),
                Message(role="user", content=template.format(**cut)),
            ],
            _VERDICT_SCHEMA,
            max_tokens=16,
            seed=self.seed,
        )
        if parsed.value is None:
            return None, "failed"
        return parsed.value["verdict"] == "yes", parsed.status

    # -- metrics -------------------------------------------------------------------------

    def faithfulness(self, answer: str, passages: Sequence[str], ids: Sequence[str]) -> Scored:
        """Claims of the answer checked against the passage most similar to each."""
        claims = split_claims(answer)
        if not claims:
            return Scored("faithfulness", None, {"reason": "the answer makes no claim"})
        vecs = _unit(self.embedder.embed([*claims, *passages]))
        sims = vecs[: len(claims)] @ vecs[len(claims) :].T
        rows: list[dict[str, Any]] = []
        for i, claim in enumerate(claims):
            j = int(np.argmax(sims[i]))
            ok, status = self.verdict("support", claim=claim, passage=passages[j])
            rows.append(
                {
                    "claim": claim,
                    "supported": ok,
                    "passage_rank": j + 1,
                    "passage_id": ids[j] if j < len(ids) else None,
                    "passage": _snippet(passages[j]),
                    "similarity": round(float(sims[i, j]), 4),
                    "parse_status": status,
                }
            )
        return self._ratio("faithfulness", rows, "supported", "claims")

    def answer_relevancy(self, question: str, answer: str) -> Scored:
        """Claims of the answer judged as helping to answer the question."""
        claims = split_claims(answer)
        if not claims:
            return Scored("answer_relevancy", 0.0, {"claims": [], "reason": "empty answer"})
        rows = []
        for claim in claims:
            ok, status = self.verdict("relevant_claim", question=question, claim=claim)
            rows.append({"claim": claim, "relevant": ok, "parse_status": status})
        return self._ratio("answer_relevancy", rows, "relevant", "claims")

    def passage_verdicts(
        self, question: str, passages: Sequence[str], ids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """One relevance verdict per retrieved passage, in rank order."""
        rows = []
        for rank, passage in enumerate(passages, start=1):
            ok, status = self.verdict("relevant_passage", question=question, passage=passage)
            rows.append(
                {
                    "rank": rank,
                    "passage_id": ids[rank - 1] if rank - 1 < len(ids) else None,
                    "relevant": ok,
                    "passage": _snippet(passage, 160),
                    "parse_status": status,
                }
            )
        return rows

    def context_metrics(
        self, question: str, passages: Sequence[str], ids: Sequence[str], k: int
    ) -> tuple[Scored, Scored]:
        """``context_precision`` and ``context_recall`` from the same passage verdicts."""
        rows = self.passage_verdicts(question, passages, ids)
        evidence = {"passages": rows, "judge": self.version}
        if any(r["relevant"] is None for r in rows):
            failed = {**evidence, "reason": "a passage verdict failed"}
            return (
                Scored("context_precision", None, failed, True),
                Scored("context_recall", None, failed, True),
            )
        flags = [bool(r["relevant"]) for r in rows]
        recall = pooled_recall(flags, k)
        why = (
            {}
            if recall is not None
            else {
                "reason": f"pooled recall needs more than {k} retrieved passages"
                if len(flags) <= k
                else "no retrieved passage was judged relevant"
            }
        )
        return (
            Scored("context_precision", average_precision(flags), evidence),
            Scored("context_recall", recall, {**evidence, "k": k, **why}),
        )

    def _ratio(self, name: str, rows: list[dict[str, Any]], flag: str, label: str) -> Scored:
        evidence: dict[str, Any] = {label: rows, "judge": self.version}
        if any(r[flag] is None for r in rows):
            return Scored(name, None, {**evidence, "reason": "a verdict failed"}, True)
        return Scored(name, sum(1 for r in rows if r[flag]) / len(rows), evidence)
