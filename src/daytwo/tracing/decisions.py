"""Decision records: a ``daytwo.decision`` event on the current span (stored linked to it)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from opentelemetry import trace
from sqlalchemy.orm import Session

from daytwo.store.tables.tracing import DecisionRow
from daytwo.tracing.attributes import DECISION_DATA, DECISION_EVENT, DECISION_KIND, DECISION_SUMMARY

__all__ = ["ERASED", "record_decision", "scrub_decisions"]


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


ERASED = "[erased]"


def _pattern(ids: frozenset[str]) -> re.Pattern[str]:
    """Any of ``ids`` as a whole token (not inside a longer id: ``faq-1`` spares ``faq-10``)."""
    alternatives = "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True))
    return re.compile(rf"(?<![\w.:/-])(?:{alternatives})(?![\w.:/-])")


def _scrub(value: Any, pattern: re.Pattern[str]) -> tuple[Any, bool]:
    """``value`` with every mention matched by ``pattern`` replaced by :data:`ERASED`."""
    if isinstance(value, str):
        new, count = pattern.subn(ERASED, value)
        return new, count > 0
    if isinstance(value, list):
        pairs = [_scrub(v, pattern) for v in value]
        return [p[0] for p in pairs], any(p[1] for p in pairs)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        changed = False
        for key, item in value.items():
            new_key, key_changed = _scrub(str(key), pattern)
            out[new_key], item_changed = _scrub(item, pattern)
            changed = changed or key_changed or item_changed
        return out, changed
    return value, False


def scrub_decisions(session: Session, ids: Iterable[str]) -> int:
    """Replace the given ids (e.g. erased document ids) in stored decision records by
    ``[erased]``, in their data and summary, in ``session``'s transaction; return how
    many records changed. Decision records are evidence of *why*, not of *whom*: after
    an erase they keep their shape without naming what was erased."""
    wanted = frozenset(i for i in ids if i)
    if not wanted:
        return 0
    data_text = sa.cast(DecisionRow.data, sa.Text)
    pattern = _pattern(wanted)
    ordered = sorted(wanted)
    seen: set[int] = set()
    changed = 0
    for start in range(0, len(ordered), 200):  # bounded statements for large erases
        batch = ordered[start : start + 200]
        candidates = session.scalars(
            sa.select(DecisionRow).where(
                sa.or_(
                    *(data_text.contains(i, autoescape=True) for i in batch),
                    *(DecisionRow.summary.contains(i, autoescape=True) for i in batch),
                )
            )
        )
        for row in candidates:
            if row.id in seen:
                continue
            seen.add(row.id)
            data, data_changed = _scrub(row.data, pattern)
            summary, summary_changed = _scrub(row.summary, pattern)
            if data_changed or summary_changed:
                row.data, row.summary = data, summary
                changed += 1
    session.flush()
    return changed
