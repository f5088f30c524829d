"""Templates in step fields: ``{{ jmespath }}`` over ``{input, steps, item}``.

A string that is exactly one ``{{ expr }}`` becomes the value itself (a list
stays a list); otherwise each placeholder is replaced by its text (JSON for
non-strings).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from daytwo.exceptions import SpecError

__all__ = ["evaluate", "render"]

_PLACEHOLDER = re.compile(r"\{\{\s*(.+?)\s*\}\}")


@lru_cache(maxsize=1024)
def _compile(expr: str) -> Any:
    try:
        return jmespath.compile(expr)
    except JMESPathError as exc:
        raise SpecError(
            f"invalid expression {expr!r}: {exc}", hint="use JMESPath, e.g. steps.docs[0].text"
        ) from exc


def evaluate(expr: str, context: dict[str, Any]) -> Any:
    """Evaluate one JMESPath expression over the run context."""
    return _compile(expr).search(context)


def render(value: Any, context: dict[str, Any]) -> Any:
    """Render every template inside ``value`` (strings, lists, dicts)."""
    if isinstance(value, str):
        if "{{" not in value:
            return value
        whole = _PLACEHOLDER.fullmatch(value.strip())
        if whole:
            return evaluate(whole.group(1), context)
        return _PLACEHOLDER.sub(lambda m: _text(evaluate(m.group(1), context)), value)
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [render(v, context) for v in value]
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, default=str)
