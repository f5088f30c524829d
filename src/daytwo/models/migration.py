"""Model migrations: token reports across tokenizers, and the replay report with gates.

:func:`token_report` counts each request under the source and the target profile
(template and tool schemas included) and flags which ones overflow the target
window. :func:`migration_report` replays a prompt set on both models and compares
schema-valid rate and ladder usage, token inflation and overflows, cost, latency
and answer agreement; :class:`Gates` turn it into a pass/fail verdict.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from daytwo.exceptions import ContextOverflow, StructuredOutputError
from daytwo.models.base import ChatModel
from daytwo.models.budget import output_reserve
from daytwo.models.golden import GoldenRow
from daytwo.models.profiles import PriceBook, Profile
from daytwo.models.structured import Ladder, generate
from daytwo.models.tokens import count_messages
from daytwo.models.types import Usage

__all__ = [
    "GateResult",
    "Gates",
    "MigrationReport",
    "SideSummary",
    "TokenReport",
    "TokenRow",
    "migration_report",
    "token_report",
]


class TokenRow(BaseModel):
    """One request counted under both profiles."""

    id: str
    from_tokens: int
    from_label: str
    to_tokens: int
    to_label: str
    ratio: float
    from_overflow: bool
    to_overflow: bool


class TokenReport(BaseModel):
    """Token inflation from one profile to another."""

    from_profile: str
    to_profile: str
    from_tokenizer: str
    to_tokenizer: str
    rows: list[TokenRow]
    total_from: int
    total_to: int
    mean_ratio: float
    max_ratio: float
    overflows_from: int
    overflows_to: int


def _fits(tokens: int, profile: Profile) -> bool:
    return tokens + output_reserve(profile, None) <= profile.context_window


def token_report(rows: Sequence[GoldenRow], src: Profile, dst: Profile) -> TokenReport:
    """Each row's prompt tokens under ``src`` and ``dst``, the ratio, and overflows."""
    out = []
    for row in rows:
        a = count_messages(row.messages, src, tools=row.tools)
        b = count_messages(row.messages, dst, tools=row.tools)
        out.append(
            TokenRow(
                id=row.id,
                from_tokens=a.tokens,
                from_label=a.label,
                to_tokens=b.tokens,
                to_label=b.label,
                ratio=b.tokens / a.tokens if a.tokens else 0.0,
                from_overflow=not _fits(a.tokens, src),
                to_overflow=not _fits(b.tokens, dst),
            )
        )
    ratios = [r.ratio for r in out]
    return TokenReport(
        from_profile=src.name,
        to_profile=dst.name,
        from_tokenizer=src.tokenizer,
        to_tokenizer=dst.tokenizer,
        rows=out,
        total_from=sum(r.from_tokens for r in out),
        total_to=sum(r.to_tokens for r in out),
        mean_ratio=statistics.fmean(ratios) if ratios else 0.0,
        max_ratio=max(ratios, default=0.0),
        overflows_from=sum(r.from_overflow for r in out),
        overflows_to=sum(r.to_overflow for r in out),
    )


class _Answer(BaseModel):
    value: Any = None
    text: str | None = None
    valid: bool | None = None
    rung: str | None = None
    attempts: int = 0
    overflow: bool = False
    error: str | None = None
    usage: Usage = Usage()
    latency_s: float = 0.0
    cost: float | None = None
    expected_match: bool | None = None


class SideSummary(BaseModel):
    """One model's results over the set."""

    profile: str
    rows: int
    structured_rows: int
    valid_rate: float | None
    rungs: dict[str, int]
    overflows: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost: float | None
    cost_known: bool
    latency_p50_s: float
    latency_mean_s: float
    expected_accuracy: float | None


class GateResult(BaseModel):
    """One gate: its value, threshold, verdict."""

    name: str
    value: float | None
    threshold: float
    passed: bool


class Gates(BaseModel):
    """Thresholds the target model must meet (None disables a gate)."""

    min_valid_rate: float | None = 0.95
    max_overflows: int | None = 0
    min_agreement: float | None = None
    max_token_inflation: float | None = None
    max_cost_ratio: float | None = None


class MigrationReport(BaseModel):
    """Both models replayed on the same set."""

    from_profile: str
    to_profile: str
    created_at: datetime
    source: SideSummary
    target: SideSummary
    token_inflation: float
    agreement_rate: float
    rows: list[dict[str, Any]]
    gates: list[GateResult]
    passed: bool


def _normalise(value: Any) -> str:
    if isinstance(value, str):
        return " ".join(value.casefold().split()).strip(" .!")
    return json.dumps(value, sort_keys=True)


def _matches(answer: Any, expected: Any) -> bool:
    if isinstance(expected, str) and isinstance(answer, str):
        return _normalise(expected) in _normalise(answer)
    return _normalise(answer) == _normalise(expected)


def _run_row(
    model: ChatModel, row: GoldenRow, prices: PriceBook, ladder: Ladder, max_tokens: int
) -> _Answer:
    p = model.profile
    prompt = count_messages(row.messages, p, tools=row.tools)
    if prompt.tokens + max_tokens > p.context_window:
        return _Answer(overflow=True, error="context overflow (not sent)")
    started = time.perf_counter()
    ans = _Answer()
    try:
        if row.schema_ is not None:
            result = generate(model, row.messages, row.schema_, ladder=ladder)
            ans.value, ans.valid, ans.rung = result.value, True, result.rung
            ans.attempts, ans.usage = len(result.attempts), result.usage
            ans.text = json.dumps(result.value)
        else:
            reply = model.chat(row.messages, temperature=0.0, max_tokens=max_tokens)
            ans.value = ans.text = reply.text or ""
            ans.usage, ans.attempts = reply.usage, 1
    except StructuredOutputError as exc:
        attempts = exc.context.get("attempts", [])
        ans.valid, ans.attempts, ans.error = False, len(attempts), "no valid output"
        ans.usage = exc.context.get("usage", Usage())
    except ContextOverflow as exc:
        ans.overflow, ans.error = True, exc.message
    ans.latency_s = time.perf_counter() - started
    cost = prices.cost(
        p.name,
        datetime.now(UTC),
        input_tokens=ans.usage.input_tokens,
        output_tokens=ans.usage.output_tokens,
        cached_tokens=ans.usage.cached_tokens,
        reasoning_tokens=ans.usage.reasoning_tokens,
    )
    ans.cost = None if cost is None else float(cost)
    if row.expected is not None and ans.error is None:
        ans.expected_match = _matches(ans.value, row.expected)
    return ans


def _summary(profile: str, rows: Sequence[GoldenRow], answers: Sequence[_Answer]) -> SideSummary:
    structured = [a for r, a in zip(rows, answers, strict=True) if r.schema_ is not None]
    judged = [a.expected_match for a in answers if a.expected_match is not None]
    costs = [a.cost for a in answers if not a.overflow]
    known = all(c is not None for c in costs)
    lat = [a.latency_s for a in answers if not a.overflow] or [0.0]
    return SideSummary(
        profile=profile,
        rows=len(answers),
        structured_rows=len(structured),
        valid_rate=(sum(bool(a.valid) for a in structured) / len(structured))
        if structured
        else None,
        rungs=dict(Counter(a.rung or "failed" for a in structured)),
        overflows=sum(a.overflow for a in answers),
        errors=sum(a.error is not None for a in answers),
        input_tokens=sum(a.usage.input_tokens for a in answers),
        output_tokens=sum(a.usage.output_tokens for a in answers),
        cost=sum(c for c in costs if c is not None) if known else None,
        cost_known=known,
        latency_p50_s=statistics.median(lat),
        latency_mean_s=statistics.fmean(lat),
        expected_accuracy=(sum(judged) / len(judged)) if judged else None,
    )


def migration_report(
    source: ChatModel,
    target: ChatModel,
    rows: Sequence[GoldenRow],
    *,
    prices: PriceBook,
    gates: Gates | None = None,
    ladder: Ladder | None = None,
    max_tokens: int = 256,
    progress: Any = None,
) -> MigrationReport:
    """Replay ``rows`` on both models and compare them; ``gates`` decide ``passed``."""
    lad = ladder or Ladder(rungs=("constrained", "repair", "reask"), max_tokens=max_tokens)
    g = gates or Gates()
    tokens = token_report(rows, source.profile, target.profile)
    a_answers, b_answers = [], []
    for row in rows:
        a_answers.append(_run_row(source, row, prices, lad, max_tokens))
        b_answers.append(_run_row(target, row, prices, lad, max_tokens))
        if progress is not None:
            progress()
    a_sum = _summary(source.profile.name, rows, a_answers)
    b_sum = _summary(target.profile.name, rows, b_answers)
    both = [
        (a, b)
        for a, b in zip(a_answers, b_answers, strict=True)
        if a.error is None and b.error is None
    ]
    agreement = sum(_matches(b.value, a.value) for a, b in both) / len(both) if both else 0.0
    inflation = tokens.total_to / tokens.total_from if tokens.total_from else 0.0
    results: list[GateResult] = []
    if g.min_valid_rate is not None and b_sum.valid_rate is not None:
        results.append(
            GateResult(
                name="target schema-valid rate",
                value=b_sum.valid_rate,
                threshold=g.min_valid_rate,
                passed=b_sum.valid_rate >= g.min_valid_rate,
            )
        )
    if g.max_overflows is not None:
        results.append(
            GateResult(
                name="target context overflows",
                value=b_sum.overflows,
                threshold=g.max_overflows,
                passed=b_sum.overflows <= g.max_overflows,
            )
        )
    if g.min_agreement is not None:
        results.append(
            GateResult(
                name="answer agreement",
                value=agreement,
                threshold=g.min_agreement,
                passed=agreement >= g.min_agreement,
            )
        )
    if g.max_token_inflation is not None:
        results.append(
            GateResult(
                name="token inflation",
                value=inflation,
                threshold=g.max_token_inflation,
                passed=inflation <= g.max_token_inflation,
            )
        )
    if g.max_cost_ratio is not None:
        ratio = (
            b_sum.cost / a_sum.cost
            if b_sum.cost is not None and a_sum.cost  # unknown or zero source cost: no ratio
            else None
        )
        results.append(
            GateResult(
                name="cost ratio",
                value=ratio,
                threshold=g.max_cost_ratio,
                passed=ratio is not None and ratio <= g.max_cost_ratio,
            )
        )
    table = []
    for row, trow, a, b in zip(rows, tokens.rows, a_answers, b_answers, strict=True):
        table.append(
            {
                "id": row.id,
                "structured": row.schema_ is not None,
                "tokens_from": trow.from_tokens,
                "tokens_to": trow.to_tokens,
                "from": a.model_dump(mode="json", exclude={"value"}),
                "to": b.model_dump(mode="json", exclude={"value"}),
                "agree": (a.error is None and b.error is None and _matches(b.value, a.value)),
            }
        )
    return MigrationReport(
        from_profile=source.profile.name,
        to_profile=target.profile.name,
        created_at=datetime.now(UTC),
        source=a_sum,
        target=b_sum,
        token_inflation=inflation,
        agreement_rate=agreement,
        rows=table,
        gates=results,
        passed=all(r.passed for r in results),
    )
