"""Retention: traces expire after their TTL; audit records are never deleted here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import CursorResult, delete

from daytwo.exceptions import InputError
from daytwo.store import Store, utcnow
from daytwo.store.tables.tracing import DecisionRow, SpanRow

__all__ = ["PurgeReport", "purge_traces"]


@dataclass(frozen=True)
class PurgeReport:
    """What :func:`purge_traces` deleted."""

    cutoff: datetime
    spans: int
    decisions: int

    def to_dict(self) -> dict[str, object]:
        """JSON form."""
        return {"cutoff": self.cutoff.isoformat(), "spans": self.spans, "decisions": self.decisions}


def _count(result: object) -> int:
    return int(result.rowcount or 0) if isinstance(result, CursorResult) else 0


def purge_traces(store: Store, ttl_days: int, *, now: datetime | None = None) -> PurgeReport:
    """Delete spans (and their decision records) that ended more than ``ttl_days`` ago.

    The audit log outlives traces: its records and checkpoints are untouched.
    """
    if ttl_days < 1:
        raise InputError(f"trace TTL must be at least 1 day, got {ttl_days}", hint="use e.g. 30")
    cutoff = (now or utcnow()) - timedelta(days=ttl_days)
    with store.session(write=True) as s:
        decisions = _count(
            s.execute(
                delete(DecisionRow)
                .where(DecisionRow.at < cutoff)
                .execution_options(synchronize_session=False)
            )
        )
        spans = _count(
            s.execute(
                delete(SpanRow)
                .where(SpanRow.end_time < cutoff)
                .execution_options(synchronize_session=False)
            )
        )
    return PurgeReport(cutoff, spans, decisions)
