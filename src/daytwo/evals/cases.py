"""The golden case: what goes in, what should come out, and how to read JSONL files of them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daytwo.exceptions import InputError

__all__ = ["Case", "ExpectedToolCall", "case_hash", "cases_to_jsonl", "parse_cases_jsonl"]


class ExpectedToolCall(BaseModel):
    """A tool call the agent should make; ``arguments`` must be a subset of the actual ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Case(BaseModel):
    """One golden case. ``key`` is stable across versions; omitted, it is derived from the input."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(default=None, max_length=200)
    input: str = Field(min_length=1)
    expected_output: str | None = None
    reference_facts: list[str] = Field(default_factory=list)
    expected_tool_calls: list[ExpectedToolCall] = Field(default_factory=list)
    relevant_doc_ids: list[str] = Field(default_factory=list)
    graded_relevance: dict[str, float] = Field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("input is blank")
        return value

    def resolved_key(self) -> str:
        """The key, or ``c-`` plus 12 hex digits of the input's hash."""
        if self.key:
            return self.key
        return "c-" + hashlib.sha256(self.input.strip().encode()).hexdigest()[:12]

    def content(self) -> dict[str, Any]:
        """The case as stored (key resolved, defaults dropped)."""
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["key"] = self.resolved_key()
        return data


def case_hash(data: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (RFC 8785) of a case's content."""
    return hashlib.sha256(rfc8785.dumps(data)).hexdigest()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "case"
    return f"{loc}: {err['msg']}"


def parse_cases_jsonl(text: str, *, source: str = "input") -> list[Case]:
    """Parse JSONL (one case object per line; blank lines skipped), naming the bad line."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{source} line {lineno} is not valid JSON: {exc.msg} (column {exc.colno})",
                hint="each line must be one JSON object such as "
                '{"input": "...", "expected_output": "..."}',
            ) from exc
        if not isinstance(obj, dict):
            raise InputError(
                f"{source} line {lineno} is a JSON {type(obj).__name__}, not an object",
                hint='write one object per line, e.g. {"input": "..."}',
            )
        try:
            case = Case.model_validate(obj)
        except ValidationError as exc:
            raise InputError(
                f"{source} line {lineno} is not a valid case: {_first_error(exc)}",
                hint="fields: input (required), expected_output, reference_facts, "
                "expected_tool_calls, relevant_doc_ids, graded_relevance, output_schema, "
                "tags, metadata, key",
            ) from exc
        key = case.resolved_key()
        if key in seen:
            raise InputError(
                f"{source} line {lineno} repeats the case key {key!r} of line {seen[key]}",
                hint="give each case a unique key (or a different input)",
            )
        seen[key] = lineno
        cases.append(case)
    if not cases:
        raise InputError(f"{source} holds no cases", hint="add one JSON object per line")
    return cases


def cases_to_jsonl(cases: list[dict[str, Any]]) -> str:
    """JSONL text of stored case contents (round-trips through :func:`parse_cases_jsonl`)."""
    return "".join(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n" for c in cases)
