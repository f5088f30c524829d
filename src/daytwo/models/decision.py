"""Re-prompt or fine-tune: the decision section of a migration report.

From the golden-set replay of both models (:mod:`daytwo.models.migration`) each row
of the target model is tagged with its failure mode. Format failures (context
overflow, no schema-valid answer, an answer that needed repair) are what prompt
work fixes: the compiled prompt, its packing, the structured-output ladder.
Semantic failures (a valid answer that is wrong, or that disagrees with the current
model) are what the model itself gets wrong: fine-tuning on good examples teaches
it. Both paths are priced: engineering hours are the caller's input (never a
guess), fine-tuning adds the training tokens at the target profile's training price.
The section states the recommendation and why.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel

from daytwo.models.migration import MigrationReport
from daytwo.models.profiles import Profile

__all__ = ["FORMAT_MODES", "SEMANTIC_MODES", "Decision", "PathEstimate", "decide_migration"]

FORMAT_MODES = ("overflow", "invalid_structure", "needed_repair")
SEMANTIC_MODES = ("wrong_answer", "disagrees")


class PathEstimate(BaseModel):
    """One way to close the gap: what it costs and which failures it addresses."""

    path: Literal["re-prompt", "fine-tune"]
    available: bool
    why_not: str | None = None
    engineering_hours: float | None = None
    engineering_usd: float | None = None
    training_examples: int | None = None
    training_tokens: int | None = None
    training_usd: float | None = None
    total_usd: float | None = None
    addresses: list[str]


Recommendation = Literal["migrate as is", "re-prompt", "fine-tune", "re-prompt, then fine-tune"]


class Decision(BaseModel):
    """Failure modes per side, both paths priced, the recommendation and its reason."""

    failure_modes: dict[str, dict[str, int]]
    """mode -> {"source": n, "target": n, "delta": target - source}."""
    regressions: dict[str, int]
    """{"format": n, "semantic": n}: rows the target fails and the source does not."""
    paths: list[PathEstimate]
    recommendation: Recommendation
    reason: str


def _modes(side: dict[str, Any], row: dict[str, Any]) -> list[str]:
    modes = []
    if side.get("overflow"):
        modes.append("overflow")
    elif row.get("structured") and side.get("valid") is False:
        modes.append("invalid_structure")
    elif side.get("rung") in {"repair", "reask", "bounded"}:
        modes.append("needed_repair")
    if side.get("error") is None:
        if side.get("expected_match") is False:
            modes.append("wrong_answer")
        elif side.get("expected_match") is None and not row.get("agree"):
            modes.append("disagrees")
    return modes


def decide_migration(
    report: MigrationReport,
    target: Profile,
    *,
    examples: int,
    reprompt_hours: float | None = None,
    finetune_hours: float | None = None,
    hourly_usd: float | None = None,
) -> Decision:
    """The re-prompt-or-fine-tune section for ``report`` (target profile ``target``).

    ``examples``: good examples available for fine-tuning (promoted traces, golden
    rows with expected answers). Hours and the hourly rate are inputs; without them
    the paths show training cost and failures addressed, and no totals.
    """
    counts: dict[str, Counter[str]] = {"source": Counter(), "target": Counter()}
    regressions = {"format": 0, "semantic": 0}
    tokens_per_example: list[int] = []
    for row in report.rows:
        src = _modes(row["from"], {**row, "agree": True})  # the source is the reference
        dst = _modes(row["to"], row)
        counts["source"].update(src)
        counts["target"].update(dst)
        if any(m in FORMAT_MODES for m in dst) and not any(m in FORMAT_MODES for m in src):
            regressions["format"] += 1
        elif any(m in SEMANTIC_MODES for m in dst) and not any(m in SEMANTIC_MODES for m in src):
            regressions["semantic"] += 1
        usage = row["to"].get("usage") or {}
        used = int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        tokens_per_example.append(used or int(row.get("tokens_to", 0)))
    modes = {
        mode: {
            "source": counts["source"][mode],
            "target": counts["target"][mode],
            "delta": counts["target"][mode] - counts["source"][mode],
        }
        for mode in (*FORMAT_MODES, *SEMANTIC_MODES)
    }

    def usd(hours: float | None) -> float | None:
        return None if hours is None or hourly_usd is None else round(hours * hourly_usd, 2)

    reprompt = PathEstimate(
        path="re-prompt",
        available=True,
        engineering_hours=reprompt_hours,
        engineering_usd=usd(reprompt_hours),
        total_usd=usd(reprompt_hours),
        addresses=list(FORMAT_MODES),
    )
    training = target.training
    if training is None:
        finetune = PathEstimate(
            path="fine-tune",
            available=False,
            why_not=f"profile {target.name} has no training price (no `training:` entry)",
            addresses=[*FORMAT_MODES, *SEMANTIC_MODES],
        )
    elif examples < training.min_examples:
        finetune = PathEstimate(
            path="fine-tune",
            available=False,
            why_not=f"{examples} examples < the {training.min_examples} the profile needs",
            training_examples=examples,
            addresses=[*FORMAT_MODES, *SEMANTIC_MODES],
        )
    else:
        mean = sum(tokens_per_example) / len(tokens_per_example) if tokens_per_example else 0.0
        train_tokens = round(mean * examples * training.epochs)
        train_usd = round(train_tokens / 1_000_000 * training.price_per_1m_tokens, 4)
        eng = usd(finetune_hours)
        finetune = PathEstimate(
            path="fine-tune",
            available=True,
            engineering_hours=finetune_hours,
            engineering_usd=eng,
            training_examples=examples,
            training_tokens=train_tokens,
            training_usd=train_usd,
            total_usd=None if eng is None else round(eng + train_usd, 2),
            addresses=[*FORMAT_MODES, *SEMANTIC_MODES],
        )
    fmt, sem = regressions["format"], regressions["semantic"]
    recommendation: Recommendation
    if fmt == 0 and sem == 0:
        recommendation = "migrate as is"
        reason = "the target fails no row the current model passes"
    elif sem == 0 or not finetune.available:
        recommendation = "re-prompt"
        reason = (
            f"{fmt} format regression(s) and no semantic ones: prompt work (compiled prompt, "
            "packing, structured-output ladder) addresses them"
            if sem == 0
            else f"{sem} semantic regression(s), but fine-tuning is not available "
            f"({finetune.why_not}); re-prompt and add examples to the prompt"
        )
    elif fmt == 0:
        recommendation = "fine-tune"
        reason = (
            f"{sem} semantic regression(s) (valid but wrong answers) and no format ones: "
            f"prompt work does not teach the model; fine-tuning on {examples} examples costs "
            f"${finetune.training_usd} in training"
        )
    else:
        recommendation = "re-prompt, then fine-tune"
        reason = (
            f"{fmt} format and {sem} semantic regression(s): fix the prompt first (cheaper, "
            "and the format failures would poison training examples), then fine-tune for "
            "the semantic ones"
        )
    if reprompt.total_usd is not None and finetune.total_usd is not None:
        reason += (
            f"; estimated totals: re-prompt ${reprompt.total_usd}, fine-tune ${finetune.total_usd}"
        )
    return Decision(
        failure_modes=modes,
        regressions=regressions,
        paths=[reprompt, finetune],
        recommendation=recommendation,
        reason=reason,
    )
