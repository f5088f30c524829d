"""Opt-in capture of prompts, completions, tool arguments/results and retrieved documents.

Off by default: spans then carry counts, names and ids only. With the ``trace_content``
setting on, emitters record content through :func:`capture` as JSON text attributes
(the GenAI names ``gen_ai.input.messages`` / ``gen_ai.output.messages`` /
``gen_ai.tool.call.arguments`` / ``gen_ai.tool.call.result``, and
``daytwo.retrieval.documents``), after the redaction rules replaced every match of
``trace_content_redact`` (regular expressions; the defaults mask e-mail addresses,
bearer tokens and API keys) by ``[REDACTED]`` and long values were cut to
``trace_content_max_chars``. Captured content is stored with the span (and exported
over OTLP), so it expires with ``trace_ttl_days``; it is not reached by ``kb erase``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import Span

from daytwo.exceptions import ConfigError

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = [
    "DEFAULT_REDACTIONS",
    "ContentPolicy",
    "capture",
    "capture_messages",
    "configure_content",
    "content_policy",
]

DEFAULT_REDACTIONS = (
    r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
    r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+",
    r"\b(?:sk|pk|rk|ghp|gho|xox[abp])[-_][A-Za-z0-9_-]{16,}\b",
)
"""Masked by default: e-mail addresses, bearer tokens, API keys with a known prefix."""

REDACTED = "[REDACTED]"


@dataclass(frozen=True)
class ContentPolicy:
    """Whether content is captured, and how it is redacted and cut."""

    enabled: bool = False
    patterns: tuple[re.Pattern[str], ...] = field(default_factory=tuple)
    max_chars: int = 16_000

    @classmethod
    def build(
        cls, enabled: bool, redact: Iterable[str] = DEFAULT_REDACTIONS, max_chars: int = 16_000
    ) -> ContentPolicy:
        """A policy from regular-expression texts (ConfigError names a bad one)."""
        compiled: list[re.Pattern[str]] = []
        for text in redact:
            try:
                compiled.append(re.compile(text))
            except re.error as exc:
                raise ConfigError(
                    f"trace_content_redact pattern {text!r} is not a regular expression: {exc}",
                    hint="fix or remove the pattern",
                ) from exc
        return cls(enabled, tuple(compiled), max_chars)

    def redact(self, text: str) -> str:
        """``text`` with every rule's matches masked and cut to ``max_chars``."""
        for pattern in self.patterns:
            text = pattern.sub(REDACTED, text)
        if len(text) > self.max_chars:
            text = text[: self.max_chars] + "…"
        return text


_POLICY = ContentPolicy()


def configure_content(settings: Settings | None) -> ContentPolicy:
    """Set the process-wide policy from the settings (None: capture off)."""
    global _POLICY
    if settings is None or not settings.trace_content:
        _POLICY = ContentPolicy()
    else:
        _POLICY = ContentPolicy.build(
            True,
            [*DEFAULT_REDACTIONS, *settings.trace_content_redact],
            settings.trace_content_max_chars,
        )
    return _POLICY


def content_policy() -> ContentPolicy:
    """The active policy."""
    return _POLICY


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)


def capture(span: Span, key: str, value: Any) -> None:
    """Set ``key`` on ``span`` to ``value`` as redacted JSON text, if capture is on."""
    policy = _POLICY
    if not policy.enabled or value is None or not span.is_recording():
        return
    span.set_attribute(key, policy.redact(_text(value)))


def capture_messages(span: Span, key: str, messages: Sequence[Any]) -> None:
    """Chat messages in the GenAI ``{role, parts: [{type: text, content}]}`` shape."""
    if not _POLICY.enabled or not span.is_recording():
        return
    shaped = []
    for msg in messages:
        if isinstance(msg, dict):
            role, content = msg.get("role", "user"), msg.get("content")
        else:
            role, content = getattr(msg, "role", "user"), getattr(msg, "content", msg)
        shaped.append({"role": role, "parts": [{"type": "text", "content": _text(content)}]})
    capture(span, key, shaped)
