"""Metric functions against hand-computed values and a reference implementation (ranx)."""

from __future__ import annotations

import math

import pytest

from daytwo.evals import metrics as m


def test_retrieval_metrics_by_hand() -> None:
    got = ["d3", "d1", "d9", "d2"]
    rel = ["d1", "d2"]
    assert m.precision_at_k(got, rel, 2) == 0.5
    assert m.precision_at_k(got, rel, 4) == 0.5
    assert m.recall_at_k(got, rel, 2) == 0.5
    assert m.recall_at_k(got, rel, 4) == 1.0
    assert m.hit_rate(got, rel, 1) == 0.0
    assert m.hit_rate(got, rel, 2) == 1.0
    assert m.mrr(got, rel) == 0.5
    assert m.mrr(["x"], rel) == 0.0
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert m.ndcg_at_k(got, rel, 4) == pytest.approx(dcg / idcg)
    assert m.ndcg_at_k(["d1", "d2"], rel, 2) == pytest.approx(1.0)
    assert m.ndcg_at_k(["d1", "d1", "d2"], rel, 3) < 1.0  # a repeated id counts once
    with pytest.raises(ValueError):
        m.precision_at_k(got, rel, 0)


def test_graded_ndcg_uses_linear_gains_like_trec_eval() -> None:
    # Same figures as trec_eval / ranx "ndcg@3" (linear gains) for this query.
    gains = {"a": 3.0, "b": 1.0, "c": 2.0}
    ranked = ["b", "z", "a", "c"]
    dcg = 1 / math.log2(2) + 0 + 3 / math.log2(4)
    idcg = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    assert m.ndcg_at_k(ranked, gains, 3) == pytest.approx(dcg / idcg)
    assert m.ndcg_at_k(ranked, gains, 3) == pytest.approx(0.5250, abs=1e-4)
    assert m.ndcg_at_k(["a", "c", "b"], gains, 3) == pytest.approx(1.0)


def test_tool_call_accuracy() -> None:
    exp = [{"name": "lookup|find", "arguments": {"order_id": "A-1"}}]
    assert m.tool_call_accuracy(exp, [{"name": "find", "arguments": '{"order_id": "a-1"}'}]) == {
        "tool_name_accuracy": 1.0,
        "tool_args_accuracy": 1.0,
        "tool_call_accuracy": 1.0,
    }
    wrong_args = m.tool_call_accuracy(exp, [{"name": "lookup", "arguments": {"order_id": "B"}}])
    assert wrong_args["tool_name_accuracy"] == 1.0
    assert wrong_args["tool_args_accuracy"] == 0.0
    extra = m.tool_call_accuracy(
        exp,
        [{"name": "lookup", "arguments": {"order_id": "A-1", "x": 1}}, {"name": "other"}],
    )
    assert extra["tool_args_accuracy"] == 1.0
    assert extra["tool_call_accuracy"] == 0.5
    assert m.tool_call_accuracy([], [])["tool_call_accuracy"] == 1.0
    assert m.tool_call_accuracy([], [{"name": "x"}])["tool_call_accuracy"] == 0.0


def test_schema_and_text_metrics() -> None:
    schema = {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}
    assert m.schema_validity('{"a": 1}', schema) == 1.0
    assert m.schema_validity('{"a": "x"}', schema) == 0.0
    assert m.schema_validity("not json", schema) == 0.0
    assert m.schema_validity(None, schema) == 0.0
    assert m.exact_match("Hello,  World!", "hello world") == 1.0
    assert m.exact_match("hello", "world") == 0.0
    assert m.fuzzy_match("the refund takes 30 days", "refunds take 30 days") > 0.8
    assert m.fuzzy_match("completely different", "30 days") < 0.5
    assert (
        m.reference_fact_recall(
            "Returns within 30 days; a 10% restocking fee.", ["30 days", "10% restocking fee"]
        )
        == 1.0
    )
    assert m.reference_fact_recall("within 90 days", ["30 days", "fee"]) == 0.0
