"""Load agent specs from YAML (errors point at the line) or from Python objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from daytwo.exceptions import SpecError
from daytwo.runtime.spec import AgentSpec

__all__ = ["load_spec", "load_spec_file", "parse_spec_text"]


def load_spec(data: AgentSpec | dict[str, Any]) -> AgentSpec:
    """An AgentSpec from a Python dict (or one already built)."""
    if isinstance(data, AgentSpec):
        return data
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, None), hint="fix the agent spec") from exc


def load_spec_file(path: Path) -> tuple[AgentSpec, str]:
    """(spec, source text) from a YAML file; errors name the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SpecError(f"agent file {path} does not exist", hint="check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read agent file {path}: {exc}", hint="check the file") from exc
    return parse_spec_text(text, source=str(path)), text


def parse_spec_text(text: str, *, source: str = "<agent>") -> AgentSpec:
    """Parse YAML text into an AgentSpec; every error names ``source:line``."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{source}:{mark.line + 1}" if mark is not None else source
        raise SpecError(
            f"{line}: invalid YAML: {exc.problem or exc.context}",
            hint="fix the YAML syntax at that line",
        ) from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {exc}", hint="fix the YAML syntax") from exc
    if not isinstance(data, dict) or node is None:
        raise SpecError(
            f"{source}:1: an agent spec must be a mapping (name:, steps:, ...)",
            hint="see src/daytwo/runtime/samples/support.yaml",
        )
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc, node, source), hint="fix the agent spec") from exc
    except SpecError as exc:
        raise SpecError(f"{source}: {exc.message}", hint=exc.hint) from exc


def _describe(exc: ValidationError, node: yaml.Node | None, source: str = "<agent>") -> str:
    err = exc.errors()[0]
    loc = [p for p in err["loc"]]
    # Drop discriminator tags pydantic inserts into the location (e.g. 'tool').
    path: list[str | int] = []
    cursor = node
    for part in loc:
        kind = _child(cursor, "kind")
        if isinstance(kind, yaml.ScalarNode) and kind.value == part:
            continue  # the tag of the step union (its kind), not a key
        nxt = _child(cursor, part) if cursor is not None else None
        if cursor is not None and nxt is None and isinstance(part, str):
            continue  # a union tag, not a key of the document
        path.append(part)
        cursor = nxt
    where = ".".join(str(p) for p in path) or "spec"
    msg = str(err["msg"])
    ctx = err.get("ctx") or {}
    if isinstance(ctx.get("error"), SpecError):
        spec_err: SpecError = ctx["error"]
        msg = spec_err.message
    if node is None:
        return f"{where}: {msg}"
    line = (cursor or _deepest(node, path)).start_mark.line + 1
    return f"{source}:{line}: {where}: {msg}"


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(key, str):
        for k, v in node.value:
            if getattr(k, "value", None) == key:
                return v  # type: ignore[no-any-return]
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]  # type: ignore[no-any-return]
    return None


def _deepest(node: yaml.Node, path: list[str | int]) -> yaml.Node:
    cursor = node
    for part in path:
        nxt = _child(cursor, part)
        if nxt is None:
            break
        cursor = nxt
    return cursor
