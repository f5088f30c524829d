"""Human review of judge verdicts: the annotation queue and judge calibration (Cohen's κ).

Every stored judge verdict (``eval_judgements``) is an item a human can label: a 1..5
score for a pointwise judge, or which answer is better (``candidate``, ``baseline`` or
``tie``) for a pairwise one. An item is offered to at most two reviewers; a pairwise
item is shown to the second reviewer in the order opposite to the first (the first
reviewer's order alternates item by item), so human position bias shows and cancels.

Agreement is computed per judge *prompt version* (``name@version``, pinned by the
prompt's hash): between reviewers (items with two labels, Cohen's κ) and between the
judge and the humans (every human label against the judge's verdict, Cohen's κ).
A judge failure is not an item. ``scope`` (eval run ids) limits every query to the
runs a caller may see; ``None`` means every run (the host's CLI).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daytwo.evals.judges import label_agreement
from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.store import Store
from daytwo.store.tables.evals import (
    EvalAnnotation,
    EvalCase,
    EvalJudge,
    EvalJudgement,
    EvalResult,
)

__all__ = [
    "PAIRWISE_LABELS",
    "POINTWISE_LABELS",
    "JudgeInfo",
    "QueueItem",
    "agreement",
    "annotate",
    "find_judge",
    "judges",
    "next_item",
    "verdicts",
]

POINTWISE_LABELS = ("1", "2", "3", "4", "5")
PAIRWISE_LABELS = ("candidate", "baseline", "tie")
REVIEWERS_PER_ITEM = 2
Scope = Collection[str] | None


@dataclass(frozen=True)
class JudgeInfo:
    """A stored judge prompt version and how many verdicts it has in scope."""

    name: str
    version: str
    kind: str
    model: str
    prompt_hash: str
    verdicts: int
    annotated: int
    created_at: str

    @property
    def ref(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {**asdict(self), "ref": self.ref}


@dataclass(frozen=True)
class QueueItem:
    """One verdict to label, with what the reviewer reads.

    Pairwise: ``first``/``second`` are the two answers in the order this reviewer sees
    them (as A and B); ``shown_first`` says which run's answer is A.
    """

    judgement_id: str
    judge: str
    kind: str
    run_id: str
    baseline_run: str | None
    case_key: str
    question: str
    reference: str
    answer: str
    first: str
    second: str
    shown_first: str | None
    labels_so_far: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return asdict(self)


def _scoped(q: Any, scope: Scope) -> Any:
    return q if scope is None else q.where(EvalJudgement.run_id.in_(list(scope)))


def find_judge(store: Store, ref: str) -> EvalJudge:
    """The stored judge ``name@version`` (NotFoundError naming the known ones)."""
    name, sep, version = ref.partition("@")
    if not name or not sep or not version:
        raise InputError(
            f"judge reference {ref!r} has no version",
            hint="write NAME@VERSION, e.g. pairwise@1",
        )
    with store.session() as s:
        row = s.scalar(
            select(EvalJudge).where(EvalJudge.name == name, EvalJudge.version == version)
        )
        if row is None:
            raise NotFoundError(
                f"no judge {ref!r}",
                hint="judges are stored by `daytwo eval judge pointwise|pairwise`; "
                "list them with GET /api/v1/evals/judges",
            )
        s.expunge(row)
        return row


def judges(store: Store, scope: Scope) -> list[JudgeInfo]:
    """Judge prompt versions with at least one verdict in scope (every stored one when None)."""
    with store.session() as s:
        counts = dict(
            s.execute(
                _scoped(
                    select(EvalJudgement.judge_id, func.count()).group_by(EvalJudgement.judge_id),
                    scope,
                )
            ).all()
        )
        labelled = dict(
            s.execute(
                _scoped(
                    select(EvalJudgement.judge_id, func.count(func.distinct(EvalJudgement.id)))
                    .join(EvalAnnotation, EvalAnnotation.judgement_id == EvalJudgement.id)
                    .group_by(EvalJudgement.judge_id),
                    scope,
                )
            ).all()
        )
        rows = s.scalars(select(EvalJudge).order_by(EvalJudge.name, EvalJudge.version))
        return [
            JudgeInfo(
                j.name,
                j.version,
                j.kind,
                j.model,
                j.prompt_hash,
                int(counts.get(j.id, 0)),
                int(labelled.get(j.id, 0)),
                j.created_at.isoformat(),
            )
            for j in rows
            if scope is None or j.id in counts
        ]


def verdicts(
    store: Store, judge: EvalJudge, scope: Scope, *, run_id: str | None = None, limit: int = 500
) -> list[dict[str, Any]]:
    """The judge's verdicts in scope (newest first), with the human labels they got."""
    with store.session() as s:
        q = _scoped(select(EvalJudgement).where(EvalJudgement.judge_id == judge.id), scope)
        if run_id is not None:
            q = q.where(EvalJudgement.run_id == run_id)
        rows = list(
            s.scalars(q.order_by(EvalJudgement.created_at.desc(), EvalJudgement.id).limit(limit))
        )
        labels = _labels(s, [r.id for r in rows])
        return [
            {
                "id": r.id,
                "run": r.run_id,
                "baseline_run": (r.detail or {}).get("baseline_run"),
                "case": r.case_key,
                "kind": r.kind,
                "verdict": r.verdict,
                "score": r.score,
                "consistent": r.consistent,
                "parse_status": r.parse_status,
                "human_labels": [a.label for a in labels.get(r.id, [])],
                "created_at": r.created_at.isoformat(),
            }
            for r in rows
        ]


def _labels(s: Session, ids: list[str]) -> dict[str, list[EvalAnnotation]]:
    out: dict[str, list[EvalAnnotation]] = {}
    for i in range(0, len(ids), 500):
        q = (
            select(EvalAnnotation)
            .where(EvalAnnotation.judgement_id.in_(ids[i : i + 500]))
            .order_by(EvalAnnotation.created_at, EvalAnnotation.id)
        )
        for a in s.scalars(q):
            out.setdefault(a.judgement_id, []).append(a)
    return out


def _order_for(judgement_id: str, earlier: list[EvalAnnotation]) -> str:
    """Which answer a new reviewer sees first: opposite of the first reviewer's order."""
    for a in earlier:
        if a.shown_first in PAIRWISE_LABELS[:2]:
            return "baseline" if a.shown_first == "candidate" else "candidate"
    parity = int(hashlib.sha256(judgement_id.encode()).hexdigest(), 16) % 2
    return PAIRWISE_LABELS[parity]


def _answer(s: Session, run_id: str | None, key: str) -> tuple[str, str, str]:
    """(question, reference, answer) of case ``key`` in eval run ``run_id`` (first repeat)."""
    if run_id is None:
        return "", "", ""
    res = s.scalar(
        select(EvalResult)
        .where(EvalResult.run_id == run_id, EvalResult.case_key == key)
        .order_by(EvalResult.repeat)
        .limit(1)
    )
    if res is None:
        return "", "", ""
    case = s.get(EvalCase, res.case_id)
    data = dict(case.data) if case is not None else {}
    reference = data.get("expected_output") or "\n".join(data.get("reference_facts", []))
    return str(data.get("input", "")), _text(reference), _text((res.output or {}).get("output"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def next_item(store: Store, judge: EvalJudge, reviewer: str, scope: Scope) -> QueueItem | None:
    """The next verdict for ``reviewer``: not labelled by them, fewer than two labels.

    Items another reviewer already labelled come first, so two reviewers overlap and
    their agreement can be measured early. None when the queue is empty for them.
    """
    with store.session() as s:
        mine = select(EvalAnnotation.judgement_id).where(EvalAnnotation.reviewer == reviewer)
        n_labels = (
            select(func.count())
            .where(EvalAnnotation.judgement_id == EvalJudgement.id)
            .correlate(EvalJudgement)
            .scalar_subquery()
        )
        q = _scoped(
            select(EvalJudgement, n_labels.label("n")).where(
                EvalJudgement.judge_id == judge.id,
                EvalJudgement.verdict != "failure",
                EvalJudgement.id.not_in(mine),
                n_labels < REVIEWERS_PER_ITEM,
            ),
            scope,
        )
        found = s.execute(
            q.order_by(n_labels.desc(), EvalJudgement.created_at, EvalJudgement.case_key).limit(1)
        ).first()
        if found is None:
            return None
        row, n = found
        earlier = _labels(s, [row.id]).get(row.id, [])
        question, reference, answer = _answer(s, row.run_id, row.case_key)
        baseline = (row.detail or {}).get("baseline_run")
        first = second = ""
        shown: str | None = None
        if row.kind == "pairwise":
            _q, _r, base_answer = _answer(s, baseline, row.case_key)
            shown = _order_for(row.id, earlier)
            first, second = (answer, base_answer) if shown == "candidate" else (base_answer, answer)
        return QueueItem(
            judgement_id=row.id,
            judge=f"{judge.name}@{judge.version}",
            kind=row.kind,
            run_id=row.run_id or "",
            baseline_run=baseline,
            case_key=row.case_key,
            question=question,
            reference=reference,
            answer=answer,
            first=first,
            second=second,
            shown_first=shown,
            labels_so_far=int(n),
        )


def annotate(
    store: Store,
    judgement_id: str,
    reviewer: str,
    label: str,
    scope: Scope,
    *,
    shown_first: str | None = None,
    note: str = "",
) -> dict[str, Any]:
    """Store ``reviewer``'s label of one verdict (once per reviewer; at most two reviewers)."""
    with store.session(write=True) as s:
        q = select(EvalJudgement).where(EvalJudgement.id == judgement_id)
        row = s.scalar(_scoped(q, scope))
        if row is None:
            raise NotFoundError(
                f"no judge verdict {judgement_id!r}",
                hint="take the next item of the queue: GET /api/v1/evals/judges/NAME/VERSION/next",
            )
        allowed = PAIRWISE_LABELS if row.kind == "pairwise" else POINTWISE_LABELS
        if label not in allowed:
            raise InputError(
                f"label {label!r} is not valid for a {row.kind} verdict",
                hint=f"use one of {', '.join(allowed)}",
            )
        if row.kind == "pairwise":
            if shown_first not in PAIRWISE_LABELS[:2]:
                raise InputError(
                    "a pairwise label needs shown_first (which answer was shown as A)",
                    hint="send shown_first: candidate or baseline, as the queue item gave it",
                )
        else:
            shown_first = None
        if row.verdict == "failure":
            raise InputError(
                f"verdict {judgement_id} is a judge failure; there is nothing to compare",
                hint="label the next item of the queue",
            )
        earlier = _labels(s, [row.id]).get(row.id, [])
        if any(a.reviewer == reviewer for a in earlier):
            raise ConflictError(
                f"you labelled verdict {judgement_id} already",
                hint="take the next item of the queue",
            )
        if len(earlier) >= REVIEWERS_PER_ITEM:
            raise ConflictError(
                f"verdict {judgement_id} has {len(earlier)} labels already",
                hint="take the next item of the queue",
            )
        ann = EvalAnnotation(
            judgement_id=row.id, reviewer=reviewer, label=label, shown_first=shown_first, note=note
        )
        s.add(ann)
        try:
            s.flush()
        except IntegrityError as exc:
            raise ConflictError(f"you labelled verdict {judgement_id} already") from exc
        return {
            "id": ann.id,
            "judgement": row.id,
            "case": row.case_key,
            "label": label,
            "shown_first": shown_first,
            "judge_verdict": row.verdict,
        }


def _kappa(a: list[str], b: list[str]) -> dict[str, Any]:
    out = label_agreement(a, b)
    return {
        "items": out["labelled"],
        "agreement": None if out["agreement"] is None else round(out["agreement"], 4),
        "kappa": None if out["kappa"] is None else round(out["kappa"], 4),
    }


def agreement(store: Store, judge: EvalJudge, scope: Scope) -> dict[str, Any]:
    """Agreement for one judge prompt version: reviewer vs reviewer, judge vs humans (κ).

    ``reviewers``: items with two labels, the first two labels of each (Cohen's κ),
    and per pair of reviewers. ``judge_vs_humans``: every human label against the
    judge's verdict on that item. κ is None when it is undefined (every label the
    same category on both sides). ``first_position_rate``: share of pairwise human
    labels that picked the answer shown first (0.5 = no position bias).
    """
    with store.session() as s:
        rows = list(
            s.scalars(
                _scoped(
                    select(EvalJudgement).where(
                        EvalJudgement.judge_id == judge.id, EvalJudgement.verdict != "failure"
                    ),
                    scope,
                )
            )
        )
        labels = _labels(s, [r.id for r in rows])
    by_id = {r.id: r for r in rows}
    pooled_a: list[str] = []
    pooled_b: list[str] = []
    per_pair: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    judge_v: list[str] = []
    human_v: list[str] = []
    firsts = picks = 0
    for jid, anns in labels.items():
        for a in anns:
            judge_v.append(by_id[jid].verdict)
            human_v.append(a.label)
            if a.shown_first and a.label != "tie":
                picks += 1
                firsts += a.label == a.shown_first
        if len(anns) >= 2:
            pooled_a.append(anns[0].label)
            pooled_b.append(anns[1].label)
        for x, y in combinations(sorted(anns, key=lambda a: a.reviewer), 2):
            la, lb = per_pair.setdefault((x.reviewer, y.reviewer), ([], []))
            la.append(x.label)
            lb.append(y.label)
    return {
        "judge": f"{judge.name}@{judge.version}",
        "kind": judge.kind,
        "prompt_hash": judge.prompt_hash,
        "verdicts": len(rows),
        "labelled_items": len(labels),
        "labels": len(human_v),
        "reviewers": {
            **_kappa(pooled_a, pooled_b),
            "by_pair": [
                {"reviewers": list(pair), **_kappa(a, b)}
                for pair, (a, b) in sorted(per_pair.items())
            ],
        },
        "judge_vs_humans": _kappa(judge_v, human_v),
        "first_position_rate": round(firsts / picks, 4) if picks else None,
    }
