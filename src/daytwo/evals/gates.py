"""Release gates and drift alerts over stored runs.

``gate``: pairs the candidate's and the baseline's per-case values of one
metric (a stored metric, or a stored judge's verdicts as ``judge:NAME@VERSION``,
see :mod:`daytwo.evals.verdicts`) and bootstraps the mean difference (seeded).
Lower-is-better metrics (latency, cost, tokens, errors) are flipped so that a *drop*
always means "worse". The gate fails when the whole confidence interval of the change lies
below ``-max_drop``: we are confident the candidate lost more than allowed.

``watch``: compares a metric's values in the most recent runs of an agent on a
set with the runs before them (unpaired bootstrap); a significant shift in the
bad direction raises an alert stored with the newest run, and a
``drift_alert`` decision event on the current span.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from daytwo.evals.metrics import LOWER_IS_BETTER
from daytwo.evals.runs import EvalRuns, RunInfo
from daytwo.evals.stats import BootstrapResult, WindowChange, paired_bootstrap, window_change
from daytwo.evals.verdicts import JUDGE_PREFIX, judge_case_values
from daytwo.exceptions import InputError, NotFoundError
from daytwo.store import Store
from daytwo.store.tables.evals import EvalAlert

__all__ = ["GateResult", "WatchResult", "gate", "watch"]

_tracer = trace.get_tracer("daytwo.evals")


def _direction(metric: str) -> float:
    return -1.0 if metric in LOWER_IS_BETTER else 1.0


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate and the figures behind it."""

    metric: str
    candidate: str
    baseline: str
    max_drop: float
    passed: bool
    higher_is_better: bool
    stats: BootstrapResult
    missing_in_candidate: list[str]
    missing_in_baseline: list[str]

    @property
    def exit_code(self) -> int:
        """0 when the gate passes, 1 when the drop is significant."""
        return 0 if self.passed else 1

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "metric": self.metric,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "max_drop": self.max_drop,
            "passed": self.passed,
            "verdict": "pass" if self.passed else "fail",
            "higher_is_better": self.higher_is_better,
            **self.stats.as_dict(),
            "missing_in_candidate": self.missing_in_candidate,
            "missing_in_baseline": self.missing_in_baseline,
        }


def gate(
    store: Store,
    *,
    candidate: str,
    baseline: str,
    metric: str,
    max_drop: float = 0.0,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> GateResult:
    """Compare two runs on one metric with a paired bootstrap CI over their common cases."""
    if max_drop < 0:
        raise InputError("--max-drop must be >= 0", hint="e.g. --max-drop 0.05")
    runs = EvalRuns(store)
    cand_run, base_run = runs.get(candidate), runs.get(baseline)
    if metric.startswith(JUDGE_PREFIX):  # a stored judge's verdicts (`daytwo eval judge`)
        cand, base = judge_case_values(store, metric, cand_run.id, base_run.id)
    else:
        cand = runs.case_values(cand_run.id, metric)
        base = runs.case_values(base_run.id, metric)
    if not cand or not base:
        which = cand_run if not cand else base_run
        known = sorted(which.summary.get("metrics", {}))
        raise NotFoundError(
            f"run {which.id[:12]} has no values of metric {metric!r}",
            hint=f"metrics of that run: {', '.join(known) or '(none)'}",
        )
    common = sorted(set(cand) & set(base))
    if not common:
        raise InputError(
            f"runs {cand_run.id[:12]} and {base_run.id[:12]} share no cases for {metric!r}",
            hint="gate two runs of the same golden set",
        )
    sign = _direction(metric)
    stats = paired_bootstrap(
        [sign * base[k] for k in common],
        [sign * cand[k] for k in common],
        confidence=confidence,
        resamples=resamples,
        seed=seed,
    )
    if sign < 0:  # report means in the metric's own units
        stats = BootstrapResult(
            stats.n,
            -stats.baseline_mean,
            -stats.candidate_mean,
            stats.mean_delta,
            stats.ci_low,
            stats.ci_high,
            stats.confidence,
            stats.resamples,
            stats.p_not_worse,
        )
    passed = not stats.ci_high < -max_drop
    return GateResult(
        metric,
        cand_run.id,
        base_run.id,
        max_drop,
        passed,
        sign > 0,
        stats,
        sorted(set(base) - set(cand)),
        sorted(set(cand) - set(base)),
    )


@dataclass(frozen=True)
class WatchResult:
    """Outcome of one drift check."""

    agent: str
    set_name: str
    metric: str
    recent_runs: list[str]
    baseline_runs: list[str]
    change: WindowChange | None
    alert: bool
    alert_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "agent": self.agent,
            "set": self.set_name,
            "metric": self.metric,
            "recent_runs": self.recent_runs,
            "baseline_runs": self.baseline_runs,
            "change": self.change.as_dict() if self.change else None,
            "alert": self.alert,
            "alert_id": self.alert_id,
            "reason": self.reason,
        }


def watch(
    store: Store,
    *,
    agent: str,
    set_name: str,
    metric: str,
    window: int = 3,
    baseline_window: int = 10,
    min_delta: float = 0.0,
    seed: int = 0,
) -> WatchResult:
    """Compare the last ``window`` completed runs with the ``baseline_window`` runs before them."""
    if window < 1 or baseline_window < 1:
        raise InputError("--window and --baseline-window must be at least 1")
    runs = EvalRuns(store)
    history: list[RunInfo] = [
        r
        for r in runs.list_runs(agent=agent, set_name=set_name)
        if r.status == "completed" and r.kind == "eval"
    ]
    if not history:
        raise NotFoundError(
            f"no completed runs of agent {agent!r} on set {set_name!r}",
            hint="run `daytwo eval run` first",
        )
    recent = history[:window]
    baseline = history[window : window + baseline_window]
    ids_r, ids_b = [r.id for r in recent], [r.id for r in baseline]
    if not baseline:
        reason = f"need more than {window} runs to compare (have {len(history)})"
        return WatchResult(agent, set_name, metric, ids_r, ids_b, None, False, None, reason)
    values_r = [v for r in recent for v in runs.case_values(r.id, metric).values()]
    values_b = [v for r in baseline for v in runs.case_values(r.id, metric).values()]
    if not values_r or not values_b:
        raise NotFoundError(
            f"metric {metric!r} has no values in these runs",
            hint="pick a metric listed by `daytwo eval show RUN`",
        )
    change = window_change(values_b, values_r, min_delta=min_delta, seed=seed)
    worse = change.delta * _direction(metric) < 0
    alert = change.changed and worse
    alert_id = None
    reason = (
        f"{metric} moved {change.delta:+.4f} "
        f"({change.baseline_mean:.4f} → {change.recent_mean:.4f}), "
        f"CI [{change.ci_low:+.4f}, {change.ci_high:+.4f}]"
    )
    if alert:
        with store.session(write=True) as s:
            row = EvalAlert(
                run_id=recent[0].id,
                agent=agent,
                set_name=set_name,
                metric=metric,
                baseline_mean=change.baseline_mean,
                recent_mean=change.recent_mean,
                delta=change.delta,
                detail={**change.as_dict(), "recent_runs": ids_r, "baseline_runs": ids_b},
            )
            s.add(row)
            s.flush()
            alert_id = row.id
        with _tracer.start_as_current_span("eval watch") as span:
            span.add_event(
                "daytwo.decision",
                {
                    "daytwo.decision.kind": "drift_alert",
                    "daytwo.decision.summary": f"drift alert on {agent}/{set_name}: {reason}",
                    "daytwo.decision.data": json.dumps(change.as_dict()),
                },
            )
    return WatchResult(agent, set_name, metric, ids_r, ids_b, change, alert, alert_id, reason)
