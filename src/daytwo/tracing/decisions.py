"""Decision records: a ``daytwo.decision`` event on the current span (stored linked to it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace

from daytwo.tracing.attributes import DECISION_DATA, DECISION_EVENT, DECISION_KIND, DECISION_SUMMARY

__all__ = ["record_decision"]


def record_decision(kind: str, summary: str, data: Mapping[str, Any] | None = None) -> bool:
    """Add a decision (why something was chosen) to the current span.

    ``kind`` is e.g. ``tool_choice``, ``replan``, ``retrieval``, ``repair_rung``,
    ``policy_denial`` or ``drift_alert``; ``summary`` is one plain-language sentence;
    ``data`` holds the structured facts (scores, candidates, reasons) and must be
    JSON-serialisable (other values are stored as their ``str``). Returns False when
    no span is recording (tracing not set up, or sampled out), True otherwise.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return False
    span.add_event(
        DECISION_EVENT,
        {
            DECISION_KIND: kind,
            DECISION_SUMMARY: summary,
            DECISION_DATA: json.dumps(dict(data or {}), sort_keys=True, default=str),
        },
    )
    return True
