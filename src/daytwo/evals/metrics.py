"""Metric functions: retrieval, tool calls, schema validity, text match, cost.

Pure functions over plain values so every layer (and every user) can reuse
them; :mod:`daytwo.evals.scoring` applies them to one agent result per case.
Retrieval metrics follow the TREC definitions (binary relevance unless graded
gains are given; nDCG uses linear gains ``rel / log2(rank + 1)``, as trec_eval and ranx).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

__all__ = [
    "LOWER_IS_BETTER",
    "exact_match",
    "fuzzy_match",
    "hit_rate",
    "mrr",
    "ndcg_at_k",
    "normalize_text",
    "precision_at_k",
    "recall_at_k",
    "reference_fact_recall",
    "schema_validity",
    "tool_call_accuracy",
]

LOWER_IS_BETTER = frozenset(
    {"latency_ms", "cost_usd", "input_tokens", "output_tokens", "total_tokens", "error"}
)
"""Metrics where a smaller value is better (gates and drift alerts flip their sign)."""


def precision_at_k(retrieved: Sequence[str], relevant: Sequence[str] | set[str], k: int) -> float:
    """Fraction of the first ``k`` retrieved ids that are relevant (divides by ``k``)."""
    if k <= 0:
        raise ValueError("k must be positive")
    rel = set(relevant)
    return sum(1 for d in retrieved[:k] if d in rel) / k


def recall_at_k(retrieved: Sequence[str], relevant: Sequence[str] | set[str], k: int) -> float:
    """Fraction of the relevant ids found in the first ``k`` retrieved (1.0 when none exist)."""
    rel = set(relevant)
    if not rel:
        return 1.0
    return len(rel & set(retrieved[:k])) / len(rel)


def hit_rate(retrieved: Sequence[str], relevant: Sequence[str] | set[str], k: int) -> float:
    """1.0 when any relevant id is in the first ``k`` retrieved, else 0.0."""
    rel = set(relevant)
    return 1.0 if any(d in rel for d in retrieved[:k]) else 0.0


def mrr(
    retrieved: Sequence[str], relevant: Sequence[str] | set[str], k: int | None = None
) -> float:
    """Reciprocal rank of the first relevant id (0.0 when none in the first ``k``)."""
    rel = set(relevant)
    for rank, doc in enumerate(retrieved[:k] if k else retrieved, start=1):
        if doc in rel:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(
    retrieved: Sequence[str],
    relevant: Sequence[str] | Mapping[str, float],
    k: int,
) -> float:
    """nDCG@k with linear graded gains (binary relevance when ``relevant`` is a list)."""
    gains: dict[str, float] = (
        {str(d): float(g) for d, g in relevant.items()}
        if isinstance(relevant, Mapping)
        else dict.fromkeys(relevant, 1.0)
    )
    gains = {d: g for d, g in gains.items() if g > 0}
    if not gains:
        return 1.0

    def dcg(rels: Sequence[float]) -> float:
        return float(sum(r / math.log2(i + 2) for i, r in enumerate(rels)))

    seen: set[str] = set()
    actual: list[float] = []
    for doc in retrieved[:k]:
        actual.append(gains.get(doc, 0.0) if doc not in seen else 0.0)
        seen.add(doc)
    ideal = sorted(gains.values(), reverse=True)[:k]
    return dcg(actual) / dcg(ideal)


def _args_match(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    for key, value in expected.items():
        if key not in actual:
            return False
        got = actual[key]
        if isinstance(value, str) and isinstance(got, str):
            if normalize_text(value) != normalize_text(got):
                return False
        elif value != got:
            return False
    return True


def _name_ok(expected: Any, actual: Any) -> bool:
    """Expected names may list alternatives: ``"orders_status_cached|orders_status_live"``."""
    return actual in str(expected).split("|")


def tool_call_accuracy(
    expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """How well the actual tool calls match the expected ones.

    Each expected call is matched (greedily, in order) to one unused actual call
    with the same name (``a|b`` accepts either); its arguments must contain the
    expected ones. Returns
    ``tool_name_accuracy`` (right tool), ``tool_args_accuracy`` (right tool and
    arguments, over the expected calls) and ``tool_call_accuracy`` (right tool and
    arguments over ``max(expected, actual)``, so extra calls cost too).
    """
    if not expected:
        score = 1.0 if not actual else 0.0
        return {
            "tool_name_accuracy": score,
            "tool_args_accuracy": score,
            "tool_call_accuracy": score,
        }
    used_name: set[int] = set()
    used_full: set[int] = set()
    names = full = 0
    for exp in expected:
        for i, act in enumerate(actual):
            if i not in used_name and _name_ok(exp.get("name"), act.get("name")):
                used_name.add(i)
                names += 1
                break
        for i, act in enumerate(actual):
            if (
                i not in used_full
                and _name_ok(exp.get("name"), act.get("name"))
                and _args_match(exp.get("arguments") or {}, _as_args(act.get("arguments")))
            ):
                used_full.add(i)
                full += 1
                break
    return {
        "tool_name_accuracy": names / len(expected),
        "tool_args_accuracy": full / len(expected),
        "tool_call_accuracy": full / max(len(expected), len(actual)),
    }


def _as_args(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def schema_validity(output: str | Mapping[str, Any] | None, schema: Mapping[str, Any]) -> float:
    """1.0 when the output (JSON text or object) validates against the JSON Schema."""
    if output is None:
        return 0.0
    value: Any = output
    if isinstance(output, str):
        try:
            value = json.loads(output)
        except json.JSONDecodeError:
            return 0.0
    validator = jsonschema.validators.validator_for(schema)(schema)
    return 0.0 if any(True for _ in validator.iter_errors(value)) else 1.0


_PUNCT = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Lower-case, NFKC, punctuation dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _SPACE.sub(" ", _PUNCT.sub(" ", text)).strip()


def exact_match(output: str | None, expected: str) -> float:
    """1.0 when the normalised texts are equal."""
    return 1.0 if output is not None and normalize_text(output) == normalize_text(expected) else 0.0


def fuzzy_match(output: str | None, expected: str) -> float:
    """Similarity in [0, 1] of the normalised texts (difflib ratio, order-aware)."""
    if output is None:
        return 0.0
    a, b = normalize_text(output), normalize_text(expected)
    if not a and not b:
        return 1.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def reference_fact_recall(output: str | None, facts: Sequence[str]) -> float:
    """Fraction of reference facts whose normalised text occurs in the output."""
    if not facts:
        return 1.0
    if output is None:
        return 0.0
    text = normalize_text(output)
    return sum(1 for f in facts if normalize_text(f) in text) / len(facts)
