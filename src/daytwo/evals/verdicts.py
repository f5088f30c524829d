"""Stored judge verdicts of a run, read back for reports and gates.

Two sources, both written once by the layer that judged:

* ``eval_judgements`` — what ``daytwo eval judge`` stored: pointwise 1..5 scores and
  pairwise verdicts (both orders) of a versioned judge;
* the judge metrics of ``daytwo eval run`` (``eval_metrics``, component ``judge``) —
  the reference-free metrics with their evidence (claims, passages, verdicts).

A gate names a stored judge as ``judge:NAME@VERSION`` (or ``judge:NAME``, its newest
version that judged the run). Pointwise: each case's score in [0, 1]. Pairwise: the
verdicts that compared the two gated runs, as a win (1), tie (0.5) or loss (0) for
each side; a judge failure is left out, like a missing metric value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import select

from daytwo.evals.runs import EvalRuns
from daytwo.exceptions import NotFoundError
from daytwo.store import Store
from daytwo.store.tables.evals import EvalJudge, EvalJudgement

__all__ = ["JUDGE_PREFIX", "judge_case_values", "judge_evidence", "judge_verdicts"]

JUDGE_PREFIX = "judge:"


def _judgements(store: Store, run_ids: list[str]) -> list[tuple[EvalJudgement, EvalJudge]]:
    with store.session() as s:
        rows = s.execute(
            select(EvalJudgement, EvalJudge)
            .join(EvalJudge, EvalJudge.id == EvalJudgement.judge_id)
            .where(EvalJudgement.run_id.in_(run_ids))
            .order_by(EvalJudgement.created_at, EvalJudgement.case_key)
        ).all()
        return [(j, g) for j, g in rows]


def _latest_only(
    rows: list[tuple[EvalJudgement, EvalJudge]],
) -> dict[tuple[str, str], list[tuple[EvalJudgement, EvalJudge]]]:
    """The newest verdict per (judge ref, case, baseline) — a re-judged run counts once."""
    latest: dict[tuple[str, str, str, str], tuple[EvalJudgement, EvalJudge]] = {}
    for j, g in rows:
        ref = f"{g.name}@{g.version}"
        latest[(ref, j.case_key, j.run_id or "", str(j.detail.get("baseline_run", "")))] = (j, g)
    grouped: dict[tuple[str, str], list[tuple[EvalJudgement, EvalJudge]]] = defaultdict(list)
    for (ref, _case, _run, base), pair in latest.items():
        grouped[(ref, base)].append(pair)
    return grouped


def judge_verdicts(store: Store, run_id: str) -> list[dict[str, Any]]:
    """One entry per judge (and baseline, for pairwise) that judged the run, with its cases."""
    out = []
    for (ref, base), pairs in sorted(_latest_only(_judgements(store, [run_id])).items()):
        judge = pairs[0][1]
        cases = [
            {
                "case": j.case_key,
                "verdict": j.verdict,
                "score": j.score,
                "consistent": j.consistent,
                "parse_status": j.parse_status,
                **(
                    {k: j.detail[k] for k in ("candidate_first", "baseline_first")}
                    if j.kind == "pairwise"
                    else {}
                ),
            }
            for j, _ in sorted(pairs, key=lambda p: p[0].case_key)
        ]
        entry: dict[str, Any] = {
            "judge": ref,
            "kind": judge.kind,
            "model": judge.model,
            "prompt_sha256": judge.prompt_hash,
            "cases": len(cases),
            "judge_failures": sum(1 for c in cases if c["verdict"] == "failure"),
        }
        if judge.kind == "pointwise":
            scores = [c["score"] for c in cases if c["score"] is not None]
            entry["mean_score"] = sum(scores) / len(scores) if scores else None
        else:
            entry["baseline_run"] = base
            entry["candidate_wins"] = sum(1 for c in cases if c["verdict"] == "candidate")
            entry["baseline_wins"] = sum(1 for c in cases if c["verdict"] == "baseline")
            entry["ties"] = sum(1 for c in cases if c["verdict"] == "tie")
            judged = [c for c in cases if c["verdict"] != "failure"]
            entry["consistency_rate"] = (
                sum(1 for c in judged if c["consistent"]) / len(judged) if judged else None
            )
        entry["results"] = cases
        out.append(entry)
    return out


def _resolve_ref(store: Store, ref: str, run_ids: list[str]) -> tuple[str, str]:
    """(name, version) of ``NAME@VERSION`` or ``NAME`` (newest version that judged the runs)."""
    name, _, version = ref.partition("@")
    if version:
        return name, version
    rows = [g for _, g in _judgements(store, run_ids) if g.name == name]
    if not rows:
        raise NotFoundError(
            f"no verdicts of judge {name!r} on these runs",
            hint="judge them first: `daytwo eval judge pointwise RUN --judge NAME`",
        )
    return name, max(rows, key=lambda g: g.created_at).version


def judge_case_values(
    store: Store, metric: str, candidate: str, baseline: str
) -> tuple[dict[str, float], dict[str, float]]:
    """Per-case values of ``judge:REF`` for the candidate and the baseline run (gates)."""
    ref = metric.removeprefix(JUDGE_PREFIX)
    name, version = _resolve_ref(store, ref, [candidate, baseline])
    rows = [
        (j, g)
        for j, g in _judgements(store, [candidate, baseline])
        if g.name == name and g.version == version
    ]
    kinds = {g.kind for _, g in rows}
    if not rows:
        raise NotFoundError(
            f"no verdicts of judge {name}@{version} on these runs",
            hint="judge them first with `daytwo eval judge`",
        )
    values: dict[str, dict[str, float]] = {candidate: {}, baseline: {}}
    if kinds == {"pointwise"}:
        for j, _ in rows:  # oldest first: the newest verdict per case wins
            if j.score is not None and j.run_id in values:
                values[j.run_id][j.case_key] = j.score
        return values[candidate], values[baseline]
    win = {"candidate": 1.0, "tie": 0.5, "baseline": 0.0}
    found = False
    for j, _ in rows:
        base = j.detail.get("baseline_run")
        if j.verdict not in win:
            continue
        if j.run_id == candidate and base == baseline:
            found = True
            values[candidate][j.case_key] = win[j.verdict]
            values[baseline][j.case_key] = 1.0 - win[j.verdict]
        elif j.run_id == baseline and base == candidate:  # judged the other way round
            found = True
            values[baseline][j.case_key] = win[j.verdict]
            values[candidate][j.case_key] = 1.0 - win[j.verdict]
    if not found:
        raise NotFoundError(
            f"judge {name}@{version} never compared runs {candidate[:12]} and {baseline[:12]}",
            hint=f"run `daytwo eval judge pairwise --candidate {candidate[:12]} "
            f"--baseline {baseline[:12]} --judge {name}`",
        )
    return values[candidate], values[baseline]


def judge_evidence(runs: EvalRuns, run_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per case, per judge metric of ``eval run``: its value and evidence (first repeat)."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in runs.metric_rows(run_id):
        if row.component == "judge" and row.repeat == 0 and row.name != "judge_failure":
            out[row.case_key][row.name] = {"value": row.value, **dict(row.detail or {})}
    return dict(out)
