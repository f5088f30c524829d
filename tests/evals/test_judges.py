"""Judges on the scripted OpenAI-compatible server: both orders, ties, repair ladder, failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from daytwo.evals.judges import (
    FAITHFULNESS,
    PAIRWISE,
    PairwiseJudge,
    PairwiseVerdict,
    PointwiseJudge,
    ask_json,
    label_agreement,
    summarize_pairwise,
)
from daytwo.models import Message, OpenAICompatProvider
from daytwo.testing import Reply, ScriptedModelServer


def _winner(text: str) -> str:
    return json.dumps({"winner": text})


def _judge(server: ScriptedModelServer) -> PairwiseJudge:
    return PairwiseJudge(OpenAICompatProvider(server.base_url, max_retries=0), PAIRWISE)


def test_pairwise_asks_both_orders_and_keeps_consistent_preferences() -> None:
    # Consistent: prefers the answer mentioning 30 days wherever it is shown.
    def responder(request: dict[str, Any]) -> str:
        user = request["messages"][-1]["content"]
        a_part = user.split("Answer A:")[1].split("Answer B:")[0]
        return _winner("A" if "30 days" in a_part else "B")

    with ScriptedModelServer(responder=responder) as server:
        v = _judge(server).compare("refund window?", "30 days", "90 days")
        assert len(server.requests) == 2
        first, second = (r["messages"][-1]["content"] for r in server.requests)
        assert first.index("30 days") < first.index("90 days")
        assert second.index("90 days") < second.index("30 days")
        assert server.requests[0]["response_format"]["type"] == "json_schema"
    assert (v.first, v.second, v.verdict, v.consistent) == ("a", "a", "a", True)


def test_position_biased_judge_gives_a_tie() -> None:
    with ScriptedModelServer(default=_winner("A")) as server:
        v = _judge(server).compare("q", "good", "bad")
    assert (v.first, v.second) == ("a", "b")
    assert v.verdict == "tie"
    assert v.consistent is False


def test_repair_ladder_then_failure_is_counted() -> None:
    script = [
        Reply(content="Sure! {'winner': 'A',}"),  # json-repair fixes this
        Reply(content="I think B is better"),  # not JSON -> re-ask
        Reply(content=_winner("B")),  # re-ask answers: B in the swapped order is `a`
    ]
    with ScriptedModelServer(script) as server:
        v = _judge(server).compare("q", "x", "y")
    assert v.parse_status == "reasked"
    assert (v.first, v.second, v.verdict, v.consistent) == ("a", "a", "a", True)
    with ScriptedModelServer(default="no idea") as server:
        bad = _judge(server).compare("q", "x", "y")
        assert len(server.requests) == 4  # each order: ask + one re-ask
    assert bad.verdict == "failure"
    assert bad.parse_status == "failed"
    assert bad.consistent is None
    summary = summarize_pairwise([v, bad], ["a", "a"])
    assert summary["judge_failures"] == 1
    assert summary["pairs"] == 2
    assert summary["repaired_or_reasked"] == 1


def test_transport_error_is_a_judge_failure_not_a_crash() -> None:
    with ScriptedModelServer(default=Reply(status=500)) as server:
        v = _judge(server).compare("q", "x", "y")
    assert v.verdict == "failure"
    assert "model error" in (v.error or "")


def test_ask_json_schema_violation_is_reasked() -> None:
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "maximum": 5}},
        "required": ["score"],
    }
    with ScriptedModelServer(
        [Reply(content='{"score": 9}'), Reply(content='{"score": 4}')]
    ) as server:
        out = ask_json(
            OpenAICompatProvider(server.base_url), [Message(role="user", content="x")], schema
        )
        assert "not usable" in server.requests[1]["messages"][-1]["content"]
    assert out.value == {"score": 4}
    assert out.status == "reasked"


def test_pointwise_scores_are_normalised() -> None:
    with ScriptedModelServer(
        [Reply(content='{"score": 5}'), Reply(content='{"score": 1}')]
    ) as server:
        judge = PointwiseJudge(OpenAICompatProvider(server.base_url), FAITHFULNESS)
        top = judge.score("q", "a", context="ctx")
        low = judge.score("q", "a", context="ctx")
        assert "ctx" in server.requests[0]["messages"][-1]["content"]
    assert (top.score, low.score) == (1.0, 0.0)
    with pytest.raises(ValueError):
        PointwiseJudge(OpenAICompatProvider("http://127.0.0.1:9"), PAIRWISE)


def test_summary_figures() -> None:
    def v(first: str, second: str) -> PairwiseVerdict:
        verdict = first if first == second else "tie"
        return PairwiseVerdict(first, second, verdict, first == second, "ok")

    verdicts = [v("a", "a"), v("a", "b"), v("b", "b"), v("b", "a")]
    s = summarize_pairwise(verdicts, ["a", "a", "a", "b"])
    assert s["consistency_rate"] == 0.5
    assert s["single_order_accuracy"] == pytest.approx(4 / 8)
    assert s["first_order_accuracy"] == pytest.approx(3 / 4)
    assert s["consistent_accuracy"] == 0.5
    assert s["swap_accuracy"] == 0.25
    # Picked whatever was shown first: v1 yes/no, v2 yes/yes, v3 no/yes, v4 no/no -> 4 of 8.
    assert s["picked_first_position_rate"] == 0.5


def test_versioned_prompts() -> None:
    assert PAIRWISE.prompt_hash != FAITHFULNESS.prompt_hash
    assert PAIRWISE.with_model("x").prompt_hash == PAIRWISE.prompt_hash


def test_label_agreement() -> None:
    out = label_agreement(["a", "b", "a", "tie"], ["a", "b", None, "a"])
    assert out["labelled"] == 3
    assert out["agreement"] == pytest.approx(2 / 3)
    assert label_agreement(["a"], [None]) == {"labelled": 0, "agreement": None, "kappa": None}
