"""Statistics for gates and drift: paired bootstrap over cases, two-window change detection.

Both use numpy with a fixed seed so a gate gives the same verdict on the same
data every time (reproducible CI).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["BootstrapResult", "WindowChange", "paired_bootstrap", "window_change"]


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of ``candidate - baseline`` over paired cases with a percentile CI."""

    n: int
    baseline_mean: float
    candidate_mean: float
    mean_delta: float
    ci_low: float
    ci_high: float
    confidence: float
    resamples: int
    p_not_worse: float
    """Share of bootstrap means of the delta that are >= 0."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return asdict(self)


def paired_bootstrap(
    baseline: Sequence[float],
    candidate: Sequence[float],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Paired bootstrap of the mean difference ``candidate[i] - baseline[i]``.

    Cases are resampled with replacement (the pairs stay together), which
    keeps the between-case variance out of the comparison.
    """
    if len(baseline) != len(candidate):
        raise ValueError("baseline and candidate must be paired (same length)")
    if len(baseline) == 0:
        raise ValueError("no paired cases")
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be in (0, 1)")
    base = np.asarray(baseline, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    diff = cand - base
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(resamples, len(diff)))
    means = diff[idx].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return BootstrapResult(
        n=len(diff),
        baseline_mean=float(base.mean()),
        candidate_mean=float(cand.mean()),
        mean_delta=float(diff.mean()),
        ci_low=float(low),
        ci_high=float(high),
        confidence=confidence,
        resamples=resamples,
        p_not_worse=float((means >= 0).mean()),
    )


@dataclass(frozen=True)
class WindowChange:
    """Recent window vs baseline window of a metric, with a bootstrap CI of the shift."""

    baseline_n: int
    recent_n: int
    baseline_mean: float
    recent_mean: float
    delta: float
    ci_low: float
    ci_high: float
    changed: bool

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return asdict(self)


def window_change(
    baseline: Sequence[float],
    recent: Sequence[float],
    *,
    min_delta: float = 0.0,
    resamples: int = 5_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> WindowChange:
    """Did the mean of ``recent`` move away from ``baseline``?

    Unpaired bootstrap of ``mean(recent) - mean(baseline)`` (each window
    resampled on its own); ``changed`` when the CI excludes zero and the shift
    is larger than ``min_delta`` in absolute value.
    """
    if len(baseline) == 0 or len(recent) == 0:
        raise ValueError("both windows need values")
    base = np.asarray(baseline, dtype=np.float64)
    rec = np.asarray(recent, dtype=np.float64)
    rng = np.random.default_rng(seed)
    b = base[rng.integers(0, len(base), size=(resamples, len(base)))].mean(axis=1)
    r = rec[rng.integers(0, len(rec), size=(resamples, len(rec)))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(r - b, [alpha, 1.0 - alpha])
    delta = float(rec.mean() - base.mean())
    changed = bool((low > 0 or high < 0) and abs(delta) > min_delta)
    return WindowChange(
        baseline_n=len(base),
        recent_n=len(rec),
        baseline_mean=float(base.mean()),
        recent_mean=float(rec.mean()),
        delta=delta,
        ci_low=float(low),
        ci_high=float(high),
        changed=changed,
    )
