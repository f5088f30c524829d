"""LLM judges: pointwise rubrics and pairwise comparisons asked in both orders.

A pairwise comparison is asked as [A, B] and again as [B, A]. Only a
preference that survives the swap counts; an inconsistent pair is a tie, and
every judge reports its consistency rate. A reply that does not parse goes
through the repair ladder (strict JSON, then json-repair, then one re-ask with
the error) and, if still unusable, is a *judge failure*: counted, never
dropped. Judges are versioned by ``(name, version)`` and the hash of their
prompt, so a changed prompt under the same version is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import jsonschema

from daytwo.exceptions import ModelError
from daytwo.models.types import ChatResponse, Message

__all__ = [
    "ANSWER_RELEVANCE",
    "CORRECTNESS",
    "FAITHFULNESS",
    "PAIRWISE",
    "ChatModel",
    "JudgeSpec",
    "PairwiseJudge",
    "PairwiseVerdict",
    "ParsedReply",
    "PointwiseJudge",
    "PointwiseVerdict",
    "ask_json",
    "label_agreement",
    "summarize_pairwise",
]


class ChatModel(Protocol):
    """What a judge needs from a model (``OpenAICompatProvider`` fits)."""

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One chat completion."""
        ...


ParseStatus = Literal["ok", "repaired", "reasked", "failed"]


@dataclass(frozen=True)
class ParsedReply:
    """A judge reply after the repair ladder; ``value`` is None when it failed."""

    value: dict[str, Any] | None
    status: ParseStatus
    raw: list[str]
    error: str | None = None


def _validate(value: Any, schema: dict[str, Any]) -> str | None:
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(value), key=str)
    return errors[0].message if errors else None


def _parse(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, bool, str]:
    """(value, repaired?, error) for one reply text."""
    try:
        value = json.loads(text)
        err = _validate(value, schema)
        if err is None:
            return value, False, ""
    except json.JSONDecodeError as exc:
        err = f"not JSON: {exc.msg}"
    import json_repair

    try:
        repaired = json_repair.loads(text)
    except Exception as exc:  # json-repair raises assorted errors on junk
        return None, False, f"{err}; json-repair failed: {exc}"
    err2 = _validate(repaired, schema)
    if err2 is None and isinstance(repaired, dict):
        return repaired, True, ""
    return None, False, (err2 or err) if err.startswith("not JSON") else err


def ask_json(
    model: ChatModel,
    messages: Sequence[Message],
    schema: dict[str, Any],
    *,
    max_tokens: int = 64,
    seed: int = 0,
    use_response_format: bool = True,
) -> ParsedReply:
    """Ask for JSON matching ``schema`` through the repair ladder.

    Rungs: strict parse → json-repair → one re-ask quoting the error. Transport
    or model errors also end as ``failed`` (the caller counts them).
    """
    options: dict[str, Any] = {"max_tokens": max_tokens, "temperature": 0.0, "seed": seed}
    if use_response_format:
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": True},
        }
    raw: list[str] = []
    try:
        reply = model.chat(list(messages), **options)
    except ModelError as exc:
        return ParsedReply(None, "failed", raw, f"model error: {exc}")
    text = reply.text or ""
    raw.append(text)
    value, repaired, err = _parse(text, schema)
    if value is not None:
        return ParsedReply(value, "repaired" if repaired else "ok", raw)
    retry = [
        *messages,
        Message(role="assistant", content=text),
        Message(
            role="user",
            content=f"That reply is not usable ({err}). Reply with only one JSON object "
            f"matching this JSON Schema: {json.dumps(schema)}",
        ),
    ]
    try:
        reply = model.chat(retry, **options)
    except ModelError as exc:
        return ParsedReply(None, "failed", raw, f"model error on re-ask: {exc}")
    text = reply.text or ""
    raw.append(text)
    value, _repaired, err2 = _parse(text, schema)
    if value is not None:
        return ParsedReply(value, "reasked", raw)
    return ParsedReply(None, "failed", raw, err2 or err)


@dataclass(frozen=True)
class JudgeSpec:
    """A versioned judge: its prompt template and the model it runs on.

    ``system`` and ``template`` are ``str.format`` templates over
    ``question``, ``answer``, ``answer_a``, ``answer_b``, ``context`` and
    ``reference``.
    """

    name: str
    version: str
    kind: Literal["pointwise", "pairwise"]
    system: str
    template: str
    model: str = "default"
    max_tokens: int = 32
    allow_tie: bool = True

    @property
    def prompt(self) -> str:
        """System and user template as one text (what is versioned)."""
        return f"{self.system}\n---\n{self.template}"

    @property
    def prompt_hash(self) -> str:
        """SHA-256 of the prompt text."""
        return hashlib.sha256(self.prompt.encode()).hexdigest()

    def with_model(self, model: str) -> JudgeSpec:
        """The same judge on another model label."""
        return JudgeSpec(
            self.name,
            self.version,
            self.kind,
            self.system,
            self.template,
            model,
            self.max_tokens,
            self.allow_tie,
        )


_POINT_SYSTEM = (
    "You are a strict evaluator. Score the answer from 1 (worst) to 5 (best) for {criterion}. "
    'Reply with only JSON like {{"score": 3}}.'
)

FAITHFULNESS = JudgeSpec(
    name="faithfulness",
    version="1",
    kind="pointwise",
    system=_POINT_SYSTEM.format(
        criterion="faithfulness: every claim in the answer must be supported by the context"
    ),
    template="Context:\n{context}\n\nQuestion: {question}\n\nAnswer: {answer}\n\nScore (1-5):",
)
ANSWER_RELEVANCE = JudgeSpec(
    name="answer_relevance",
    version="1",
    kind="pointwise",
    system=_POINT_SYSTEM.format(
        criterion="relevance: the answer addresses the question directly and completely"
    ),
    template="Question: {question}\n\nAnswer: {answer}\n\nScore (1-5):",
)
CORRECTNESS = JudgeSpec(
    name="correctness",
    version="1",
    kind="pointwise",
    system=_POINT_SYSTEM.format(
        criterion="correctness: the answer agrees with the reference answer"
    ),
    template="Question: {question}\n\nReference answer: {reference}\n\nAnswer: {answer}\n\n"
    "Score (1-5):",
)
PAIRWISE = JudgeSpec(
    name="pairwise",
    version="1",
    kind="pairwise",
    system=(
        "You are a strict judge. Two answers to the same question follow. Pick the answer that "
        "is more correct and more relevant to the question. "
        'Reply with only JSON: {"winner": "A"} or {"winner": "B"}.'
    ),
    template="Question: {question}\n\nAnswer A: {answer_a}\n\nAnswer B: {answer_b}\n\n"
    "Which answer is better, A or B?",
    allow_tie=False,
)


_SCORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["score"],
}


@dataclass(frozen=True)
class PointwiseVerdict:
    """Score normalised to [0, 1] (None on a judge failure) and how the reply parsed."""

    score: float | None
    raw_score: int | None
    parse_status: ParseStatus
    raw: list[str]
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when no rung of the ladder produced a score."""
        return self.score is None


class PointwiseJudge:
    """Rubric judge returning a score in [0, 1] ((1..5 − 1) / 4)."""

    def __init__(self, model: ChatModel, spec: JudgeSpec = FAITHFULNESS, *, seed: int = 0) -> None:
        if spec.kind != "pointwise":
            raise ValueError("PointwiseJudge needs a pointwise JudgeSpec")
        self.model = model
        self.spec = spec
        self.seed = seed

    def score(
        self, question: str, answer: str, *, context: str = "", reference: str = ""
    ) -> PointwiseVerdict:
        """Ask the rubric once (with the repair ladder)."""
        user = self.spec.template.format(
            question=question, answer=answer, context=context, reference=reference
        )
        parsed = ask_json(
            self.model,
            [Message(role="system", content=self.spec.system), Message(role="user", content=user)],
            _SCORE_SCHEMA,
            max_tokens=self.spec.max_tokens,
            seed=self.seed,
        )
        if parsed.value is None:
            return PointwiseVerdict(None, None, "failed", parsed.raw, parsed.error)
        raw_score = int(parsed.value["score"])
        return PointwiseVerdict((raw_score - 1) / 4.0, raw_score, parsed.status, parsed.raw)


Preference = Literal["A", "B", "tie"]


@dataclass(frozen=True)
class PairwiseVerdict:
    """Both orders of one comparison and the combined verdict.

    ``first``/``second`` are the raw picks in the order asked (``first`` with
    ``a`` shown as A, ``second`` with ``b`` shown as A), mapped back to the
    caller's answers: "a", "b", "tie" or None on failure. ``verdict`` is "a" or
    "b" only when both orders agree, "tie" when they disagree or both say tie,
    "failure" when either order failed.
    """

    first: str | None
    second: str | None
    verdict: str
    consistent: bool | None
    parse_status: ParseStatus
    raw: list[str] = field(default_factory=list)
    error: str | None = None


def _combine_status(a: ParseStatus, b: ParseStatus) -> ParseStatus:
    order: list[ParseStatus] = ["ok", "repaired", "reasked", "failed"]
    return max(a, b, key=order.index)


class PairwiseJudge:
    """Pairwise judge asked in both orders; only consistent preferences count."""

    def __init__(self, model: ChatModel, spec: JudgeSpec = PAIRWISE, *, seed: int = 0) -> None:
        if spec.kind != "pairwise":
            raise ValueError("PairwiseJudge needs a pairwise JudgeSpec")
        self.model = model
        self.spec = spec
        self.seed = seed
        choices = ["A", "B", "tie"] if spec.allow_tie else ["A", "B"]
        self.schema: dict[str, Any] = {
            "type": "object",
            "properties": {"winner": {"type": "string", "enum": choices}},
            "required": ["winner"],
        }

    def ask(self, question: str, answer_a: str, answer_b: str, *, context: str = "") -> ParsedReply:
        """One order only (what a single-order judge would do)."""
        user = self.spec.template.format(
            question=question, answer_a=answer_a, answer_b=answer_b, context=context
        )
        return ask_json(
            self.model,
            [Message(role="system", content=self.spec.system), Message(role="user", content=user)],
            self.schema,
            max_tokens=self.spec.max_tokens,
            seed=self.seed,
        )

    def compare(self, question: str, a: str, b: str, *, context: str = "") -> PairwiseVerdict:
        """Ask [a, b] and [b, a]; combine into one verdict about ``a`` vs ``b``."""
        p1 = self.ask(question, a, b, context=context)
        p2 = self.ask(question, b, a, context=context)
        first = _map(p1, swapped=False)
        second = _map(p2, swapped=True)
        status = _combine_status(p1.status, p2.status)
        raw = [*p1.raw, *p2.raw]
        if first is None or second is None:
            return PairwiseVerdict(
                first, second, "failure", None, "failed", raw, p1.error or p2.error
            )
        if first == second:
            return PairwiseVerdict(first, second, first, True, status, raw)
        return PairwiseVerdict(first, second, "tie", False, status, raw)


def _map(parsed: ParsedReply, *, swapped: bool) -> str | None:
    if parsed.value is None:
        return None
    winner = parsed.value["winner"]
    if winner == "tie":
        return "tie"
    if swapped:
        return "b" if winner == "A" else "a"
    return "a" if winner == "A" else "b"


def summarize_pairwise(
    verdicts: Sequence[PairwiseVerdict], truth: Sequence[str] | None = None
) -> dict[str, Any]:
    """Consistency, failures and (with the known better answer per pair) accuracies.

    ``truth[i]`` is "a" or "b". Accuracies: ``single_order_accuracy`` over every
    single ask (both orders, as a one-order judge would see them),
    ``first_order_accuracy`` over the [a, b] asks only, ``consistent_accuracy``
    over consistent verdicts only, and ``swap_accuracy`` counting a tie or a
    failure as wrong (the share of pairs a swapped judge gets right outright).
    """
    n = len(verdicts)
    failures = sum(1 for v in verdicts if v.verdict == "failure")
    judged = [v for v in verdicts if v.verdict != "failure"]
    consistent = [v for v in judged if v.consistent]
    out: dict[str, Any] = {
        "pairs": n,
        "judge_failures": failures,
        "consistency_rate": len(consistent) / len(judged) if judged else 0.0,
        "repaired_or_reasked": sum(
            1 for v in verdicts if v.parse_status in {"repaired", "reasked"}
        ),
    }
    picks = [p for v in verdicts for p in (v.first, v.second) if p is not None]
    # Position bias: share of single asks where the judge picked whatever was shown first.
    shown_first = [
        p == ("a" if i == 0 else "b")
        for v in verdicts
        for i, p in enumerate((v.first, v.second))
        if p is not None and p != "tie"
    ]
    out["picked_first_position_rate"] = sum(shown_first) / len(shown_first) if shown_first else 0.0
    out["single_asks"] = len(picks)
    if truth is not None:
        if len(truth) != n:
            raise ValueError("truth must have one entry per verdict")
        singles = [
            p == t
            for v, t in zip(verdicts, truth, strict=True)
            for p in (v.first, v.second)
            if p is not None
        ]
        firsts = [v.first == t for v, t in zip(verdicts, truth, strict=True) if v.first is not None]
        cons = [v.verdict == t for v, t in zip(verdicts, truth, strict=True) if v.consistent]
        out["single_order_accuracy"] = sum(singles) / len(singles) if singles else 0.0
        out["first_order_accuracy"] = sum(firsts) / len(firsts) if firsts else 0.0
        out["consistent_accuracy"] = sum(cons) / len(cons) if cons else 0.0
        out["consistent_pairs"] = len(cons)
        out["swap_accuracy"] = (
            sum(1 for v, t in zip(verdicts, truth, strict=True) if v.verdict == t) / n if n else 0.0
        )
    return out


def label_agreement(verdicts: Sequence[str], labels: Sequence[str | None]) -> dict[str, Any]:
    """Agreement of judge verdicts with human labels where labels exist (rate and Cohen's κ)."""
    pairs = [(v, h) for v, h in zip(verdicts, labels, strict=True) if h is not None]
    if not pairs:
        return {"labelled": 0, "agreement": None, "kappa": None}
    agree = sum(1 for v, h in pairs if v == h) / len(pairs)
    cats = sorted({c for p in pairs for c in p})
    n = len(pairs)
    expected = sum(
        (sum(1 for v, _ in pairs if v == c) / n) * (sum(1 for _, h in pairs if h == c) / n)
        for c in cats
    )
    kappa = None if expected >= 1.0 else (agree - expected) / (1.0 - expected)
    return {"labelled": n, "agreement": agree, "kappa": kappa}
