"""Map other tracing conventions onto daytwo's (GenAI semantic conventions).

External agents send spans in the OpenTelemetry GenAI conventions (``gen_ai.*``,
including the older ``gen_ai.system`` / ``gen_ai.usage.prompt_tokens`` names) or in
OpenInference's (``openinference.span.kind``, ``llm.model_name``,
``llm.token_count.*``, ``tool.name``, ``retrieval.documents.*``). :func:`normalize`
adds the ``gen_ai.*`` attributes the ledger and the explainer read, next to the
originals, and never overwrites an attribute the span already has. A value of the
wrong type in a field the ledger counts (tokens, model names) is an
:class:`~daytwo.exceptions.InputError`: pricing a span from a guessed value would
be worse than refusing it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from daytwo.exceptions import InputError
from daytwo.tracing import attributes as A

__all__ = ["OPENINFERENCE_KIND", "normalize"]

OPENINFERENCE_KIND = "openinference.span.kind"

_OPERATIONS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "RETRIEVER": "retrieval",
}
_TOKEN_FIELDS = (
    A.USAGE_INPUT,
    A.USAGE_OUTPUT,
    A.USAGE_CACHE_READ_INPUT,
    A.USAGE_REASONING_OUTPUT,
    "gen_ai.usage.prompt_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.prompt",
    "llm.token_count.completion",
    "llm.token_count.total",
    "llm.token_count.prompt_details.cache_read",
    "llm.token_count.completion_details.reasoning",
)
_STRING_FIELDS = (
    A.OPERATION,
    A.REQUEST_MODEL,
    A.RESPONSE_MODEL,
    A.TOOL_NAME,
    OPENINFERENCE_KIND,
    "llm.model_name",
    "embedding.model_name",
    "tool.name",
)
# Where each daytwo attribute can come from, first match wins.
_ALIASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    (A.PROVIDER, ("gen_ai.system", "llm.provider", "llm.system")),
    (A.USAGE_INPUT, ("gen_ai.usage.prompt_tokens", "llm.token_count.prompt")),
    (A.USAGE_OUTPUT, ("gen_ai.usage.completion_tokens", "llm.token_count.completion")),
    (A.USAGE_CACHE_READ_INPUT, ("llm.token_count.prompt_details.cache_read",)),
    (A.USAGE_REASONING_OUTPUT, ("llm.token_count.completion_details.reasoning",)),
    (A.SESSION_ID, ("session.id", "gen_ai.conversation.id")),
)
_RETRIEVAL_DOC = re.compile(r"^retrieval\.documents\.(\d+)\.")


_TYPED = {**{k: "int" for k in _TOKEN_FIELDS}, **{k: "str" for k in _STRING_FIELDS}}


def _check_types(attrs: Mapping[str, Any], where: str) -> None:
    for key in _TYPED.keys() & attrs.keys():
        value = attrs[key]
        if value is None:
            continue
        if _TYPED[key] == "str":
            if not isinstance(value, str):
                raise InputError(
                    f"{where}: attribute {key!r} must be a string, not {type(value).__name__}",
                    hint="send it as OTLP stringValue",
                )
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(
                f"{where}: attribute {key!r} must be an integer, "
                f"not {type(value).__name__} {str(value)[:40]!r}",
                hint="send token counts as OTLP intValue",
            )
        if isinstance(value, float) and not value.is_integer():
            raise InputError(
                f"{where}: attribute {key!r} must be a whole number, not {value}",
                hint="send token counts as OTLP intValue",
            )
        if value < 0:
            raise InputError(f"{where}: attribute {key!r} is negative ({value})", hint="fix it")


def normalize(attrs: dict[str, Any], where: str) -> dict[str, Any]:
    """``attrs`` with daytwo's ``gen_ai.*`` attributes added (in place; returned).

    ``where`` names the span in error messages.
    """
    _check_types(attrs, where)
    for target, sources in _ALIASES:
        if target in attrs:
            continue
        for source in sources:
            value = attrs.get(source)
            if value is not None:
                attrs[target] = int(value) if isinstance(value, float) else value
                break
    kind = attrs.get(OPENINFERENCE_KIND)
    if isinstance(kind, str):
        operation = _OPERATIONS.get(kind.upper())
        if operation is not None and A.OPERATION not in attrs:
            attrs[A.OPERATION] = operation
        if operation == "chat":
            model = attrs.get("llm.model_name")
            if model and A.REQUEST_MODEL not in attrs:
                attrs[A.REQUEST_MODEL] = model
        elif operation == "embeddings":
            model = attrs.get("embedding.model_name") or attrs.get("llm.model_name")
            if model and A.REQUEST_MODEL not in attrs:
                attrs[A.REQUEST_MODEL] = model
        elif operation == "execute_tool":
            tool = attrs.get("tool.name")
            if tool and A.TOOL_NAME not in attrs:
                attrs[A.TOOL_NAME] = tool
        elif operation == "retrieval" and A.KB_HITS not in attrs:
            docs = {m.group(1) for k in attrs if (m := _RETRIEVAL_DOC.match(k))}
            attrs[A.KB_HITS] = len(docs)
    for key in (A.USAGE_INPUT, A.USAGE_OUTPUT):
        value = attrs.get(key)
        if isinstance(value, float):
            attrs[key] = int(value)
    return attrs
