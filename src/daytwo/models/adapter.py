"""The model adapter: send a compiled prompt and read its answer, structured or not.

:func:`complete_compiled` sends a :class:`~daytwo.models.prompts.CompiledPrompt` as
compiled (the family's structure mode, stop sequences and sampling defaults), reads the
answer (a forced tool call's arguments in ``tool_call`` mode) and, for a schema, checks
it. An invalid answer is repaired with ``json-repair``, then handed to the repair ladder
(:func:`~daytwo.models.structured.generate`) from the compiled messages, so the ladder's
re-asks also speak the family's dialect (no system message where it has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from daytwo.models.base import ChatModel
from daytwo.models.prompts import CompiledPrompt, PromptDefinition, compile_prompt
from daytwo.models.structured import Ladder, generate, schema_validator
from daytwo.models.types import Usage, add_usage

__all__ = ["Completion", "complete_compiled", "complete_definition"]


@dataclass
class Completion:
    """An answer to a compiled prompt."""

    text: str
    value: Any
    rung: str | None
    """``compiled`` when the first answer was valid, else the ladder rung that made it so."""
    attempts: int
    usage: Usage = field(default_factory=Usage)
    compiled: CompiledPrompt | None = None


def complete_compiled(
    model: ChatModel,
    compiled: CompiledPrompt,
    schema: dict[str, Any] | None = None,
    *,
    seed: int | None = None,
    ladder: Ladder | None = None,
) -> Completion:
    """Send ``compiled`` to ``model``; with ``schema`` the value is valid against it
    (:class:`~daytwo.exceptions.StructuredOutputError` when no rung makes it so)."""
    reply = model.chat(
        compiled.messages,
        tools=compiled.tools,
        response_format=compiled.response_format,
        temperature=compiled.temperature if compiled.temperature is not None else 0.0,
        seed=seed,
        max_tokens=compiled.max_tokens,
        extra=compiled.extra,
    )
    text = compiled.answer_text(reply) or ""
    if schema is None:
        return Completion(text, text, None, 1, reply.usage, compiled)
    v = schema_validator(schema)
    value, errors = v.check(text)
    if not errors:
        return Completion(text, value, "compiled", 1, reply.usage, compiled)
    import json

    import json_repair

    fixed = json_repair.repair_json(text, skip_json_loads=False)
    repaired = fixed if isinstance(fixed, str) else json.dumps(fixed)
    value, errors = v.check(repaired)
    if not errors:
        return Completion(repaired, value, "repair", 1, reply.usage, compiled)
    lad = ladder or Ladder(
        rungs=("repair", "bounded", "reask"), max_tokens=compiled.max_tokens, seed=seed
    )
    result = generate(model, compiled.messages, schema, ladder=lad)
    usage = add_usage(reply.usage, result.usage)
    return Completion(
        json.dumps(result.value),
        result.value,
        result.rung,
        1 + len(result.attempts),
        usage,
        compiled,
    )


def complete_definition(
    model: ChatModel,
    definition: PromptDefinition,
    *,
    max_tokens: int | None = None,
    seed: int | None = None,
    ladder: Ladder | None = None,
) -> Completion:
    """Compile ``definition`` for the model's profile and send it."""
    compiled = compile_prompt(definition, model.profile, max_tokens=max_tokens)
    return complete_compiled(model, compiled, definition.output_schema, seed=seed, ladder=ladder)
