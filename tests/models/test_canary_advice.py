"""Canary advice: which inference parameters to adjust, fitted from top-k logprobs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from daytwo.models.canary_advice import recommend
from daytwo.models.profiles import Sampling


def _run(
    temperature: float, *, seed: int = 7, prompts: int = 6, length: int = 12
) -> list[dict[str, Any]]:
    """Canary outputs whose top-5 logprobs come from fixed logits at ``temperature``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(prompts):
        tokens = []
        for _ in range(length):
            logits = rng.normal(0, 2.5, size=50)
            logp = logits / temperature - np.log(np.exp(logits / temperature).sum())
            order = np.argsort(-logp)[:5]
            top = [[f"t{i}", float(logp[i])] for i in order]
            tokens.append({"token": top[0][0], "logprob": top[0][1], "top": top})
        out.append({"text": "an answer that does not repeat itself", "tokens": tokens})
    return out


def _by_name(adjustments: list[Any]) -> dict[str, Any]:
    return {a.parameter: a for a in adjustments}


def test_a_flatter_build_gets_a_lower_temperature() -> None:
    advice = _by_name(recommend(_run(1.0), _run(1.5), Sampling(temperature=0.6), {}))
    temp = advice["sampling.temperature"]
    assert temp.current == 0.6
    assert temp.suggested == pytest.approx(0.6 / 1.5, rel=0.05)
    assert "flatter" in temp.reason


def test_a_sharper_build_gets_a_higher_temperature_relative_to_the_default() -> None:
    advice = _by_name(recommend(_run(1.0), _run(0.7), Sampling(), {}))
    temp = advice["sampling.temperature"]
    assert temp.current is None
    factor = float(str(temp.suggested).split(" ")[0])
    assert factor == pytest.approx(1 / 0.7, rel=0.05)
    assert "sharper" in temp.reason


def test_the_same_build_needs_no_adjustment() -> None:
    assert recommend(_run(1.0), _run(1.0), Sampling(temperature=0.7, top_p=0.9), {}) == []


def test_top_p_follows_the_recorded_nucleus() -> None:
    advice = _by_name(recommend(_run(1.0), _run(1.6), Sampling(temperature=0.7, top_p=0.8), {}))
    top_p = advice["sampling.top_p"]
    assert top_p.current == 0.8
    assert isinstance(top_p.suggested, float)
    assert top_p.suggested < 0.8  # the same tokens hold less of a flatter distribution


def test_broken_json_asks_for_grammar_and_repetition_for_a_penalty() -> None:
    recorded = [
        {"text": '{"ok": true}', "tokens": []},
        {"text": "one two three four", "tokens": []},
    ]
    now = [
        {"text": '{"ok": tru', "tokens": []},
        {"text": "one two three one two three one two three", "tokens": []},
    ]
    advice = _by_name(recommend(recorded, now, Sampling(repeat_penalty=1.1), {}))
    assert advice["sampling.grammar"].suggested is True
    assert advice["sampling.repeat_penalty"].suggested == pytest.approx(1.2)
    assert "sampling.temperature" not in advice  # no logprobs: no fit


def test_engine_only_changes_suggest_pinning_the_recorded_settings() -> None:
    changes = {"n_batch": [512, 8], "n_ubatch": [512, 8]}
    advice = _by_name(recommend(_run(1.0), _run(1.0), Sampling(), changes))
    assert advice["engine_options"].suggested == "n_batch=512, n_ubatch=512"
    # weights changed too: the settings are not the explanation, no pinning advice
    changes["weights_sha256"] = ["a", "b"]
    assert "engine_options" not in _by_name(recommend(_run(1.0), _run(1.0), Sampling(), changes))
