"""Structured output that fails closed: generate, validate, climb the repair ladder.

The ladder, configurable per call (:class:`Ladder`), in order:

1. ``constrained``: ask with ``response_format: json_schema`` where the profile supports
   it (llama.cpp compiles it to a grammar; OpenAI enforces it); plain prompting otherwise;
2. ``repair``: deterministic repair of the text with ``json-repair`` (no model call);
3. ``bounded``: when an answer was cut off by ``max_tokens`` (``finish_reason ==
   "length"``), ask again with a token budget derived from the schema
   (:func:`~daytwo.models._schemas.token_budget`) and, under constrained decoding, a
   grammar whose strings and arrays are bounded (a model looping inside a string must
   close it); it takes the place of one re-ask, so ``max_reasks`` bounds both;
4. ``reask``: ask the same model again, quoting the validation errors (``max_reasks``);
5. ``repair_model``: ask a separate repair model to fix the text against the schema;
6. ``fallback``: ask a fallback model the original question.

The instruction shows the schema as a compact template (``Ladder.instruction="shape"``,
what small models can follow) or as the JSON Schema itself (``"json_schema"``).

The answer is *always* validated (a Pydantic model or a JSON Schema). Every attempt is
recorded (:class:`Attempt`: rung, model, text, errors, tokens, latency) and the rung
that succeeded becomes a ``repair_rung`` decision on the current span. When no rung
succeeds, :class:`~daytwo.exceptions.StructuredOutputError` carries all attempts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import trace
from pydantic import BaseModel, ValidationError

from daytwo.exceptions import SchemaDefinitionError, StructuredOutputError
from daytwo.models._schemas import bounded_schema, render_shape, token_budget
from daytwo.models.base import ChatModel
from daytwo.models.types import ChatResponse, Message, Usage, add_usage

__all__ = [
    "DEFAULT_RUNGS",
    "Attempt",
    "Ladder",
    "Rung",
    "StructuredResult",
    "generate",
    "schema_validator",
]

Rung = Literal["constrained", "repair", "bounded", "reask", "repair_model", "fallback"]
DEFAULT_RUNGS: tuple[Rung, ...] = (
    "constrained",
    "repair",
    "bounded",
    "reask",
    "repair_model",
    "fallback",
)

_tracer = trace.get_tracer("daytwo.models")


@dataclass(frozen=True)
class Ladder:
    """Which rungs to climb, and the models of the last two.

    ``max_tokens`` is the first attempt's budget; the ``bounded`` rung raises it to the
    schema's budget with strings bounded to ``bound_string`` characters and arrays to
    ``bound_items`` items (where the schema leaves them unbounded).
    """

    rungs: tuple[Rung, ...] = DEFAULT_RUNGS
    max_reasks: int = 2
    repair_model: ChatModel | None = None
    fallback_model: ChatModel | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None
    instruction: Literal["shape", "json_schema"] = "shape"
    instruction_in: Literal["system", "user"] = "user"
    bound_string: int = 64
    bound_items: int = 8


class Attempt(BaseModel):
    """One try: which rung, which model, what it said, what was wrong."""

    rung: str
    model: str
    constrained: bool = False
    text: str | None = None
    valid: bool = False
    errors: list[str] = []
    usage: Usage = Usage()
    latency_s: float = 0.0
    finish_reason: str | None = None
    max_tokens: int | None = None


@dataclass
class StructuredResult:
    """A valid value, with every attempt and the rung that produced it."""

    value: Any
    attempts: list[Attempt]
    rung: str
    usage: Usage = field(default_factory=Usage)


@dataclass
class _Validator:
    name: str
    json_schema: dict[str, Any]
    model: type[BaseModel] | None

    def check(self, text: str | None) -> tuple[Any, list[str]]:
        """(value, []) when valid, else (None, errors)."""
        if text is None or not text.strip():
            return None, ["the answer is empty"]
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return None, [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        if self.model is not None:
            try:
                return self.model.model_validate(data), []
            except ValidationError as exc:
                return None, [
                    f"{'/'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                    for e in exc.errors()
                ][:10]
        from jsonschema.validators import validator_for

        validator = validator_for(self.json_schema)(self.json_schema)
        errors = [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in validator.iter_errors(data)
        ]
        return (data, []) if not errors else (None, errors[:10])


def schema_validator(schema: type[BaseModel] | dict[str, Any]) -> _Validator:
    """A validator for a Pydantic model or a JSON Schema (SchemaDefinitionError if invalid)."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return _Validator(schema.__name__, schema.model_json_schema(), schema)
    if not isinstance(schema, dict):
        raise SchemaDefinitionError(
            "schema must be a Pydantic model class or a JSON Schema dict, "
            f"not {type(schema).__name__}",
            hint="pass a BaseModel subclass or a dict",
        )
    from jsonschema.exceptions import SchemaError
    from jsonschema.validators import validator_for

    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "<root>"
        raise SchemaDefinitionError(
            f"the schema is not valid JSON Schema at {where}: {exc.message}",
            hint="fix the schema (check it with jsonschema's check_schema)",
        ) from exc
    if schema.get("type") not in (None, "object", "array"):
        raise SchemaDefinitionError(
            f"the schema's root type is {schema.get('type')!r}",
            hint="structured output needs an object or array schema at the root",
        )
    return _Validator(str(schema.get("title") or "schema"), schema, None)


def _instruction(v: _Validator, kind: str) -> str:
    if kind == "json_schema":
        return (
            "Answer with a single JSON value that validates against this JSON Schema, and "
            f"nothing else (no prose, no code fences):\n{json.dumps(v.json_schema)}"
        )
    return (
        "Answer with JSON only (no prose, no code fences), filling in this shape "
        f"with the values from the request:\n{render_shape(v.json_schema)}"
    )


def _with_instruction(messages: Sequence[Message], v: _Validator, ladder: Ladder) -> list[Message]:
    msgs = list(messages)
    text = _instruction(v, ladder.instruction)
    last = len(msgs) - 1
    if ladder.instruction_in == "user" and msgs and msgs[last].role == "user":
        # Small models follow an instruction right after the request more than a system one.
        msgs[last] = msgs[last].model_copy(update={"content": f"{msgs[last].content}\n\n{text}"})
        return msgs
    if msgs and msgs[0].role == "system":
        msgs[0] = msgs[0].model_copy(update={"content": f"{msgs[0].content or ''}\n\n{text}"})
    else:
        msgs.insert(0, Message(role="system", content=text))
    return msgs


def _response_format(v: _Validator, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": v.name[:64] or "answer", "schema": schema, "strict": True},
    }


class _Run:
    """State of one ``generate`` call."""

    def __init__(self, v: _Validator, ladder: Ladder) -> None:
        self.v = v
        self.ladder = ladder
        self.attempts: list[Attempt] = []
        self.value: Any = None
        # Set by the ``bounded`` rung: every later ask uses the bounded grammar and budget.
        self.bounded: dict[str, Any] | None = None

    def bound(self, model: ChatModel) -> None:
        """Switch to the bounded schema (grammar) and the token budget derived from it."""
        lad = self.ladder
        schema = bounded_schema(self.v.json_schema, lad.bound_string, lad.bound_items)
        window = model.profile.context_window // 2
        budget = min(token_budget(schema), model.profile.max_output_tokens, window)
        if not ("constrained" in lad.rungs and model.profile.features.json_schema):
            # Without a grammar nothing bounds the answer (a looping model fills any
            # budget): give it twice the room, at most what the bounded schema needs.
            budget = min(budget, 2 * lad.max_tokens)
        self.bounded = {"schema": schema, "max_tokens": max(lad.max_tokens, budget)}

    def ask(self, model: ChatModel, rung: str, messages: Sequence[Message]) -> Attempt:
        constrained = "constrained" in self.ladder.rungs and model.profile.features.json_schema
        grammar = self.bounded["schema"] if self.bounded else self.v.json_schema
        max_tokens = self.bounded["max_tokens"] if self.bounded else self.ladder.max_tokens
        started = time.perf_counter()
        reply: ChatResponse = model.chat(
            messages,
            response_format=_response_format(self.v, grammar) if constrained else None,
            temperature=self.ladder.temperature,
            seed=self.ladder.seed,
            max_tokens=max_tokens,
        )
        value, errors = self.v.check(reply.text)
        if errors and reply.finish_reason == "length":
            errors.insert(0, f"the answer was cut off at max_tokens={max_tokens}: it is too long")
        attempt = Attempt(
            rung=rung,
            model=model.profile.name,
            constrained=constrained,
            text=reply.text,
            valid=not errors,
            errors=errors,
            usage=reply.usage,
            latency_s=time.perf_counter() - started,
            finish_reason=reply.finish_reason,
            max_tokens=max_tokens,
        )
        return self._keep(attempt, value)

    def repair(self, previous: Attempt) -> Attempt | None:
        if "repair" not in self.ladder.rungs or previous.text is None:
            return None
        import json_repair

        started = time.perf_counter()
        fixed = json_repair.repair_json(previous.text, skip_json_loads=False)
        text = fixed if isinstance(fixed, str) else json.dumps(fixed)
        if not text.strip() or text == previous.text or text == '""':
            return None
        value, errors = self.v.check(text)
        attempt = Attempt(
            rung="repair",
            model="json-repair",
            text=text,
            valid=not errors,
            errors=errors,
            latency_s=time.perf_counter() - started,
        )
        return self._keep(attempt, value)

    def _keep(self, attempt: Attempt, value: Any) -> Attempt:
        self.attempts.append(attempt)
        if attempt.valid:
            self.value = value
        return attempt

    def ask_and_repair(self, model: ChatModel, rung: str, messages: Sequence[Message]) -> Attempt:
        attempt = self.ask(model, rung, messages)
        if not attempt.valid:
            repaired = self.repair(attempt)
            if repaired is not None and repaired.valid:
                return repaired
        return attempt


def _reask_messages(base: list[Message], bad: Attempt, extra: str = "") -> list[Message]:
    errors = "\n".join(f"- {e}" for e in bad.errors)
    return [
        *base,
        Message(role="assistant", content=bad.text or ""),
        Message(
            role="user",
            content=f"That answer is not valid against the schema:\n{errors}\n"
            f"{extra}Reply with the corrected JSON only.",
        ),
    ]


def _bounded_messages(run: _Run, base: list[Message], bad: Attempt) -> list[Message]:
    """The ``bounded`` rung's request: the question again under a bounded grammar; the
    re-ask with a length hint when there is no grammar to bound the answer."""
    if bad.constrained:
        # A looping answer in the context invites the loop again: ask afresh.
        return base
    hint = f"Keep every string under {run.ladder.bound_string} characters. "
    return _reask_messages(base, bad, hint)


def _repair_messages(v: _Validator, bad: Attempt) -> list[Message]:
    return [
        Message(
            role="system",
            content="You fix JSON so that it validates against a JSON Schema. "
            "Keep the data, change only what the errors require. Reply with JSON only.",
        ),
        Message(
            role="user",
            content=f"Schema:\n{json.dumps(v.json_schema)}\n\nJSON:\n{bad.text or ''}\n\n"
            "Errors:\n" + "\n".join(f"- {e}" for e in bad.errors),
        ),
    ]


def _last_said(run: _Run) -> Attempt:
    """The last attempt a model made (not a json-repair one), with its errors."""
    return [a for a in run.attempts if a.rung != "repair"][-1]


def _climb(run: _Run, model: ChatModel, messages: list[Message]) -> Attempt:
    ladder = run.ladder
    first_rung = "constrained" if "constrained" in ladder.rungs else "prompt"
    last = run.ask_and_repair(model, first_rung, messages)
    if last.valid:
        return last
    for _ in range(ladder.max_reasks):
        said = _last_said(run)
        if "bounded" in ladder.rungs and run.bounded is None and said.finish_reason == "length":
            run.bound(model)
            last = run.ask_and_repair(model, "bounded", _bounded_messages(run, messages, said))
        elif "reask" in ladder.rungs:
            last = run.ask_and_repair(model, "reask", _reask_messages(messages, said))
        else:
            break
        if last.valid:
            return last
    if "repair_model" in ladder.rungs and ladder.repair_model is not None:
        last = run.ask_and_repair(
            ladder.repair_model, "repair_model", _repair_messages(run.v, _last_said(run))
        )
        if last.valid:
            return last
    if "fallback" in ladder.rungs and ladder.fallback_model is not None:
        last = run.ask_and_repair(ladder.fallback_model, "fallback", messages)
    return last


def generate(
    model: ChatModel,
    messages: Sequence[Message],
    schema: type[BaseModel] | dict[str, Any],
    ladder: Ladder | None = None,
) -> StructuredResult:
    """A schema-valid value from ``model``, climbing ``ladder`` as far as needed."""
    v = schema_validator(schema)
    lad = ladder or Ladder()
    run = _Run(v, lad)
    base = _with_instruction(messages, v, lad)
    with _tracer.start_as_current_span(f"structured {v.name}") as span:
        span.set_attribute("daytwo.model.profile", model.profile.name)
        last = _climb(run, model, base)
        usage = Usage()
        for a in run.attempts:
            usage = add_usage(usage, a.usage)
        span.set_attribute("daytwo.structured.attempts", len(run.attempts))
        if not last.valid:
            span.set_attribute("daytwo.structured.valid", False)
            raise StructuredOutputError(
                f"no rung of the repair ladder produced output valid against {v.name} "
                f"after {len(run.attempts)} attempts (last errors: {'; '.join(last.errors[:3])})",
                hint="simplify the schema, raise max_reasks, or add a repair/fallback model",
                attempts=run.attempts,
                usage=usage,
            )
        span.set_attribute("daytwo.structured.valid", True)
        span.set_attribute("daytwo.structured.rung", last.rung)
        span.add_event(
            "daytwo.decision",
            {
                "daytwo.decision.kind": "repair_rung",
                "daytwo.decision.summary": (
                    f"Output for {v.name} became valid at rung '{last.rung}' "
                    f"after {len(run.attempts)} attempt(s)."
                ),
                "daytwo.decision.data": json.dumps(
                    {
                        "schema": v.name,
                        "rung": last.rung,
                        "model": last.model,
                        "attempts": [
                            {
                                "rung": a.rung,
                                "model": a.model,
                                "valid": a.valid,
                                "errors": a.errors[:3],
                            }
                            for a in run.attempts
                        ],
                        "input_tokens": usage.input_tokens,
                        "output_tokens": usage.output_tokens,
                    }
                ),
            },
        )
        return StructuredResult(value=run.value, attempts=run.attempts, rung=last.rung, usage=usage)
