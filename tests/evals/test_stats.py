"""Paired bootstrap and window change detection: seeded, sensitive, no false alarms on noise."""

from __future__ import annotations

import numpy as np
import pytest

from daytwo.evals.stats import paired_bootstrap, window_change


def test_paired_bootstrap_is_seeded_and_detects_a_drop() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0.5, 1.0, 40)
    worse = base - 0.2 + rng.normal(0, 0.02, 40)
    a = paired_bootstrap(base, worse, seed=3)
    b = paired_bootstrap(base, worse, seed=3)
    assert a == b
    assert a.mean_delta == pytest.approx(float((worse - base).mean()))
    assert a.ci_high < -0.15
    assert a.p_not_worse == 0.0
    same = paired_bootstrap(base, base + rng.normal(0, 0.01, 40), seed=3)
    assert same.ci_low < 0 < same.ci_high


def test_pairing_removes_case_variance() -> None:
    # Cases differ a lot, the candidate is uniformly 0.05 worse: pairing sees it clearly.
    base = np.linspace(0.0, 1.0, 30)
    cand = base - 0.05
    r = paired_bootstrap(base, cand)
    assert r.ci_low == pytest.approx(-0.05)
    assert r.ci_high == pytest.approx(-0.05)


def test_bootstrap_input_errors() -> None:
    with pytest.raises(ValueError):
        paired_bootstrap([1.0], [1.0, 2.0])
    with pytest.raises(ValueError):
        paired_bootstrap([], [])


def test_window_change() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.8, 0.05, 60)
    assert not window_change(base, rng.normal(0.8, 0.05, 20)).changed
    shifted = window_change(base, rng.normal(0.6, 0.05, 20))
    assert shifted.changed
    assert shifted.delta < -0.15
    assert not window_change(base, rng.normal(0.78, 0.05, 20), min_delta=0.1).changed
