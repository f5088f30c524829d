"""Scores of traces: user feedback (thumbs, ratings) and labels, kept next to the spans.

A score names a trace (not a span): feedback arrives after the agent answered, from
the application, with the trace id it got from ``daytwo.sdk``. Numbers (booleans as
0/1) and category labels are both kept; eval promotion and reports read them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from daytwo.exceptions import InputError
from daytwo.store import Store
from daytwo.store.base import new_id, utcnow
from daytwo.store.tables.tracing import ScoreRow

__all__ = ["Score", "check_trace_id", "record_score", "scores_of"]

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


@dataclass(frozen=True)
class Score:
    """One stored score."""

    id: str
    trace_id: str
    name: str
    value: float | str
    comment: str | None
    principal: str
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "trace_id": self.trace_id,
            "name": self.name,
            "value": self.value,
            "comment": self.comment,
            "principal": self.principal,
            "created_at": self.created_at.isoformat(),
        }


def check_trace_id(trace_id: str) -> str:
    """A trace id as 32 lowercase hex digits, or InputError."""
    tid = trace_id.strip().lower()
    if not _TRACE_ID.match(tid) or tid == "0" * 32:
        raise InputError(
            f"{trace_id[:40]!r} is not a trace id",
            hint="pass the 32-hex-digit trace id (daytwo.sdk's observe(...).trace_id)",
        )
    return tid


def _of(row: ScoreRow) -> Score:
    value: float | str = row.value_num if row.value_num is not None else (row.value_text or "")
    return Score(row.id, row.trace_id, row.name, value, row.comment, row.principal, row.created_at)


def record_score(
    store: Store,
    trace_id: str,
    name: str,
    value: float | int | bool | str,
    *,
    comment: str | None,
    principal: str,
    tenant: str,
) -> Score:
    """Store a score of ``trace_id`` (the caller checked the trace is the tenant's)."""
    tid = check_trace_id(trace_id)
    if not _NAME.match(name):
        raise InputError(
            f"score name {name[:70]!r} is not valid",
            hint="use 1-64 letters, digits, '_', '.', ':' or '-' (e.g. user_feedback)",
        )
    num: float | None = None
    text: str | None = None
    if isinstance(value, bool):
        num = 1.0 if value else 0.0
    elif isinstance(value, int | float):
        num = float(value)
        if not math.isfinite(num):
            raise InputError(f"score value {value} is not finite", hint="send a finite number")
    elif isinstance(value, str) and 0 < len(value) <= 255:
        text = value
    else:
        raise InputError(
            "a score value is a number, a boolean or a label of 1-255 characters",
            hint="e.g. 1, 0.8, true or 'correct'",
        )
    if comment is not None and len(comment) > 4000:
        raise InputError("the comment is longer than 4000 characters", hint="shorten it")
    row = ScoreRow(
        id=new_id(),
        trace_id=tid,
        name=name,
        value_num=num,
        value_text=text,
        comment=comment,
        principal=principal,
        tenant=tenant,
        created_at=utcnow(),
    )
    with store.session(write=True) as s:
        s.add(row)
        s.flush()
        return _of(row)


def scores_of(store: Store, trace_id: str, tenant: str) -> list[Score]:
    """The tenant's scores of a trace, oldest first."""
    tid = check_trace_id(trace_id)
    with store.session() as s:
        rows = s.scalars(
            select(ScoreRow)
            .where(ScoreRow.trace_id == tid, ScoreRow.tenant == tenant)
            .order_by(ScoreRow.created_at, ScoreRow.id)
        )
        return [_of(r) for r in rows]
