"""Prompt sets from JSONL: one request per line, for token reports and migration reports.

Each line is an object with ``input`` (or ``prompt``): a string or a list of chat
messages (``{"role": ..., "content": ...}``), and optionally ``expected`` (the
answer, or the JSON value for structured rows), ``schema`` (a JSON Schema: the
row is a structured-output row), ``tools`` and ``id``. The eval layer's golden
sets replace this format once they exist.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daytwo.exceptions import InputError
from daytwo.models.types import Message

__all__ = ["GoldenRow", "load_rows"]


class GoldenRow(BaseModel):
    """One request of a prompt set."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str
    messages: list[Message]
    expected: Any = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    tools: list[dict[str, Any]] | None = None


def _messages(value: Any, where: str) -> list[Message]:
    if isinstance(value, str):
        if not value.strip():
            raise InputError(f"{where}: 'input' is empty", hint="give the prompt text")
        return [Message(role="user", content=value)]
    if isinstance(value, list) and value:
        try:
            return [Message.model_validate(m) for m in value]
        except ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(
                f"{where}: bad message {'.'.join(str(p) for p in err['loc'])}: {err['msg']}",
                hint='messages look like {"role": "user", "content": "..."}',
            ) from exc
    raise InputError(
        f"{where}: 'input' must be a string or a non-empty list of messages",
        hint='e.g. {"input": "What is 2+2?", "expected": "4"}',
    )


def load_rows(path: Path) -> list[GoldenRow]:
    """Every row of the JSONL file (InputError naming the line on a bad one)."""
    if not path.is_file():
        raise InputError(f"{path} does not exist", hint="give a JSONL file, one request per line")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}", hint="give a UTF-8 JSONL file") from exc
    rows: list[GoldenRow] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{where} is not valid JSON: {exc.msg}", hint="one JSON object per line"
            ) from exc
        if not isinstance(obj, dict):
            raise InputError(f"{where} is not a JSON object", hint="one JSON object per line")
        raw = obj.get("input", obj.get("prompt", obj.get("messages")))
        if raw is None:
            raise InputError(f"{where} has no 'input'", hint='add "input": "the prompt"')
        unknown = set(obj) - {"input", "prompt", "messages", "expected", "schema", "tools", "id"}
        if unknown:
            raise InputError(
                f"{where} has unknown field {sorted(unknown)[0]!r}",
                hint="fields: input, expected, schema, tools, id",
            )
        schema = obj.get("schema")
        if schema is not None:
            from daytwo.models.structured import schema_validator

            try:
                schema_validator(schema)
            except InputError as exc:
                raise type(exc)(f"{where}: {exc.message}", hint=exc.hint) from exc
        rows.append(
            GoldenRow(
                id=str(obj.get("id", n)),
                messages=_messages(raw, where),
                expected=obj.get("expected"),
                schema_=schema,
                tools=obj.get("tools"),
            )
        )
    if not rows:
        raise InputError(f"{path} holds no rows", hint="add one JSON object per line")
    return rows
