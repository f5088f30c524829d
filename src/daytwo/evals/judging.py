"""Judge an eval run's answers and keep every verdict: ``daytwo eval judge``.

A judge is stored once per ``(name, version)`` with its model, prompt and the prompt's
SHA-256 (``eval_judges``); a judge whose prompt changed under the same version is
refused, so two verdicts of ``faithfulness@1`` always come from the same prompt. Every
verdict is a row of ``eval_judgements``: pointwise, the 1..5 score (and [0, 1]);
pairwise, the two orders asked ([candidate, baseline] then [baseline, candidate]),
the combined verdict (a preference counts only when both orders agree) and whether
they agreed. A judge failure is stored as such, never dropped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from daytwo.evals.judges import (
    ANSWER_RELEVANCE,
    CORRECTNESS,
    FAITHFULNESS,
    PAIRWISE,
    ChatModel,
    JudgeSpec,
    PairwiseJudge,
    PointwiseJudge,
    summarize_pairwise,
)
from daytwo.evals.runs import EvalRuns
from daytwo.exceptions import ConflictError, InputError
from daytwo.store.tables.evals import EvalCase, EvalJudge, EvalJudgement, EvalResult

__all__ = [
    "BUILTIN_JUDGES",
    "CaseText",
    "judge_pairwise",
    "judge_pointwise",
    "load_judge_spec",
    "register_judge",
]

BUILTIN_JUDGES: dict[str, JudgeSpec] = {
    j.name: j for j in (FAITHFULNESS, ANSWER_RELEVANCE, CORRECTNESS, PAIRWISE)
}
Progress = Callable[[int, int], None]


def load_judge_spec(ref: str) -> JudgeSpec:
    """A built-in judge by name, or a YAML/JSON file (name, version, kind, system, template)."""
    if ref in BUILTIN_JUDGES:
        return BUILTIN_JUDGES[ref]
    path = Path(ref)
    if not path.is_file():
        raise InputError(
            f"no judge {ref!r}",
            hint=f"use one of {', '.join(sorted(BUILTIN_JUDGES))} or a judge YAML file",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path}: a judge file is a mapping of name, version, kind, template")
    missing = [k for k in ("name", "version", "kind", "template") if not data.get(k)]
    if missing:
        raise InputError(f"{path}: missing {', '.join(missing)}")
    if data["kind"] not in ("pointwise", "pairwise"):
        raise InputError(f"{path}: kind must be pointwise or pairwise, not {data['kind']!r}")
    spec = JudgeSpec(
        name=str(data["name"]),
        version=str(data["version"]),
        kind=data["kind"],
        system=str(data.get("system", "")),
        template=str(data["template"]),
        max_tokens=int(data.get("max_tokens", 32)),
        allow_tie=bool(data.get("allow_tie", True)),
    )
    fields = {"question", "answer", "answer_a", "answer_b", "context", "reference"}
    try:
        (spec.system + spec.template).format(**dict.fromkeys(fields, ""))
    except (KeyError, IndexError, ValueError) as exc:
        raise InputError(
            f"{path}: the template uses an unknown field or bad braces ({exc})",
            hint="fields: " + ", ".join(sorted(fields)) + "; write literal braces as {{ }}",
        ) from exc
    return spec


def register_judge(runs: EvalRuns, spec: JudgeSpec) -> str:
    """The stored judge's id; a different prompt under the same name and version is refused."""
    with runs.store.session(write=True) as s:
        row = s.scalars(
            select(EvalJudge).where(EvalJudge.name == spec.name, EvalJudge.version == spec.version)
        ).first()
        if row is None:
            row = EvalJudge(
                name=spec.name,
                version=spec.version,
                kind=spec.kind,
                model=spec.model,
                prompt=spec.prompt,
                prompt_hash=spec.prompt_hash,
            )
            s.add(row)
            s.flush()
            return row.id
        if row.prompt_hash != spec.prompt_hash or row.kind != spec.kind:
            raise ConflictError(
                f"judge {spec.name}@{spec.version} is stored with another prompt "
                f"(sha256 {row.prompt_hash[:12]}, this one {spec.prompt_hash[:12]})",
                hint="give the changed prompt a new version",
            )
        return row.id


@dataclass(frozen=True)
class CaseText:
    """What a judge reads of one case of a run."""

    key: str
    question: str
    answer: str
    reference: str
    context: str


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _case_texts(runs: EvalRuns, run_id: str) -> dict[str, CaseText]:
    runs.get(run_id)  # unknown run -> NotFoundError
    results: dict[str, EvalResult] = {}
    for r in runs.results(run_id):
        if r.repeat == 0:
            results[r.case_key] = r
    with runs.store.session() as s:
        ids = [r.case_id for r in results.values()]
        cases = {
            c.id: dict(c.data) for c in s.scalars(select(EvalCase).where(EvalCase.id.in_(ids)))
        }
    out: dict[str, CaseText] = {}
    for key, r in sorted(results.items()):
        data = cases.get(r.case_id, {})
        output = r.output or {}
        context = output.get("retrieved_context") or []
        out[key] = CaseText(
            key=key,
            question=str(data.get("input", "")),
            answer=_text(output.get("output")),
            reference=_text(data.get("expected_output"))
            or "\n".join(data.get("reference_facts", [])),
            context="\n\n".join(_text(c) for c in context)
            if isinstance(context, list)
            else _text(context),
        )
    return out


def judge_pointwise(
    runs: EvalRuns,
    model: ChatModel,
    spec: JudgeSpec,
    run_id: str,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Score every case of ``run_id``; store each verdict; return the summary and rows."""
    if spec.kind != "pointwise":
        raise InputError(f"judge {spec.name} is {spec.kind}; use `eval judge {spec.kind}`")
    judge_id = register_judge(runs, spec)
    texts = _case_texts(runs, run_id)
    judge = PointwiseJudge(model, spec)
    rows: list[dict[str, Any]] = []
    for i, t in enumerate(texts.values()):
        v = judge.score(t.question, t.answer, context=t.context, reference=t.reference)
        rows.append(
            {
                "case": t.key,
                "score": v.score,
                "raw_score": v.raw_score,
                "parse_status": v.parse_status,
                "verdict": str(v.raw_score) if v.raw_score is not None else "failure",
                "raw": v.raw,
            }
        )
        if progress is not None:
            progress(i + 1, len(texts))
    _store(runs, judge_id, run_id, "pointwise", rows)
    scores = [r["score"] for r in rows if r["score"] is not None]
    return {
        "judge": f"{spec.name}@{spec.version}",
        "judge_id": judge_id,
        "run": run_id,
        "cases": len(rows),
        "judge_failures": len(rows) - len(scores),
        "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
        "results": [{k: v for k, v in r.items() if k != "raw"} for r in rows],
    }


def judge_pairwise(
    runs: EvalRuns,
    model: ChatModel,
    spec: JudgeSpec,
    candidate: str,
    baseline: str,
    *,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Compare the candidate's and the baseline's answer on every shared case, both orders."""
    if spec.kind != "pairwise":
        raise InputError(f"judge {spec.name} is {spec.kind}; use `eval judge {spec.kind}`")
    judge_id = register_judge(runs, spec)
    cand = _case_texts(runs, candidate)
    base = _case_texts(runs, baseline)
    shared = [k for k in cand if k in base]
    if not shared:
        raise InputError(
            f"runs {candidate} and {baseline} share no case",
            hint="compare two runs of the same golden set",
        )
    judge = PairwiseJudge(model, spec)
    verdicts = []
    rows: list[dict[str, Any]] = []
    names = {"a": "candidate", "b": "baseline", "tie": "tie", None: None}
    for i, key in enumerate(shared):
        c, b = cand[key], base[key]
        v = judge.compare(c.question, c.answer, b.answer, context=c.context)
        verdicts.append(v)
        rows.append(
            {
                "case": key,
                "verdict": names.get(v.verdict, v.verdict),
                "candidate_first": names[v.first],
                "baseline_first": names[v.second],
                "consistent": v.consistent,
                "parse_status": v.parse_status,
                "raw": v.raw,
            }
        )
        if progress is not None:
            progress(i + 1, len(shared))
    _store(runs, judge_id, candidate, "pairwise", rows, baseline=baseline)
    summary = summarize_pairwise(verdicts)
    return {
        "judge": f"{spec.name}@{spec.version}",
        "judge_id": judge_id,
        "candidate": candidate,
        "baseline": baseline,
        "pairs": len(rows),
        "candidate_wins": sum(1 for r in rows if r["verdict"] == "candidate"),
        "baseline_wins": sum(1 for r in rows if r["verdict"] == "baseline"),
        "ties": sum(1 for r in rows if r["verdict"] == "tie"),
        "judge_failures": summary["judge_failures"],
        "consistency_rate": round(summary["consistency_rate"], 4),
        "picked_first_position_rate": round(summary["picked_first_position_rate"], 4),
        "results": [{k: v for k, v in r.items() if k != "raw"} for r in rows],
    }


def _store(
    runs: EvalRuns,
    judge_id: str,
    run_id: str,
    kind: str,
    rows: list[dict[str, Any]],
    *,
    baseline: str | None = None,
) -> None:
    with runs.store.session(write=True) as s:
        s.add_all(
            EvalJudgement(
                judge_id=judge_id,
                run_id=run_id,
                case_key=r["case"],
                kind=kind,
                verdict=str(r["verdict"]),
                score=r.get("score"),
                consistent=r.get("consistent"),
                parse_status=r["parse_status"],
                detail={
                    "raw": r["raw"][-4:],
                    **({"baseline_run": baseline} if baseline else {}),
                    **(
                        {
                            "candidate_first": r["candidate_first"],
                            "baseline_first": r["baseline_first"],
                        }
                        if kind == "pairwise"
                        else {}
                    ),
                },
            )
            for r in rows
        )
