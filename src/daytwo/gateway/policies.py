"""Policies around every call: rate limits, payload limits, SSRF guard, injection markers."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from daytwo.exceptions import InputError, PayloadTooLarge, ToolRateLimited
from daytwo.gateway.egress import EgressPolicy

__all__ = [
    "RateLimits",
    "SsrfGuard",
    "check_payload",
    "find_injection_markers",
]


class RateLimits:
    """Per-agent and per-tool limits (``limits`` moving window; memory or Redis storage)."""

    def __init__(self, storage_uri: str = "memory://", *, namespace: str = "daytwo") -> None:
        self.namespace = namespace
        options: dict[str, Any] = {}
        if storage_uri.startswith(("redis://", "rediss://")):
            options["key_prefix"] = f"daytwo-{namespace}"
        self._storage = storage_from_string(storage_uri, **options)
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._parsed: dict[str, RateLimitItem] = {}

    def item(self, spec: str) -> RateLimitItem:
        """The parsed limit, InputError when the text is not a limit."""
        parsed = self._parsed.get(spec)
        if parsed is None:
            try:
                parsed = parse(spec)
            except ValueError as exc:
                raise InputError(
                    f"rate limit {spec!r} is not valid",
                    hint="write e.g. '10/second' or '100/minute'",
                ) from exc
            self._parsed[spec] = parsed
        return parsed

    def hit(self, spec: str, scope: str, name: str) -> None:
        """Count one call; ToolRateLimited when the limit is exhausted."""
        item = self.item(spec)
        if self._limiter.hit(item, self.namespace, scope, name):
            return
        stats = self._limiter.get_window_stats(item, self.namespace, scope, name)
        retry = max(0.0, stats.reset_time - time.time())
        raise ToolRateLimited(
            f"{scope} {name!r} exceeded its rate limit {spec}",
            hint=f"retry in {retry:.1f} s or raise the limit",
            retry_after=retry,
        )


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


def check_payload(value: Any, *, max_bytes: int, max_depth: int, what: str) -> int:
    """Size in bytes of the JSON payload; PayloadTooLarge past the limits."""
    try:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"{what} is not JSON-serialisable: {exc}", hint="send JSON values"
        ) from exc
    if size > max_bytes:
        raise PayloadTooLarge(
            f"{what} is {size} bytes, over the limit of {max_bytes}",
            hint="send less data or raise policy.max_input_bytes / max_output_bytes",
        )
    if max_depth and _depth(value, max_depth) > max_depth:
        raise PayloadTooLarge(
            f"{what} is nested deeper than {max_depth} levels",
            hint="flatten it or raise policy.max_depth",
        )
    return size


SsrfGuard = EgressPolicy
"""The egress policy under its former name (see :mod:`daytwo.gateway.egress`)."""


_INJECTION = re.compile(
    r"ignore (?:all |any )?(?:the )?(?:previous|prior|above) (?:instructions|prompts?)"
    r"|disregard (?:all |the )?(?:previous|prior|above)"
    r"|you are now (?:a|an|in) "
    r"|(?:reveal|print|show) (?:your|the) system prompt"
    r"|<\|im_start\|>|<\|system\|>|\[/?INST\]"
    r"|BEGIN (?:SYSTEM|ADMIN) (?:PROMPT|INSTRUCTIONS)",
    re.IGNORECASE,
)


def find_injection_markers(value: Any, *, path: str = "") -> list[str]:
    """Paths of string values in a tool's output that look like prompt injection."""
    found: list[str] = []
    if isinstance(value, str):
        if _INJECTION.search(value):
            found.append(path or "$")
    elif isinstance(value, dict):
        for k, v in value.items():
            found.extend(find_injection_markers(v, path=f"{path}.{k}" if path else str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found.extend(find_injection_markers(v, path=f"{path}[{i}]"))
    return found
