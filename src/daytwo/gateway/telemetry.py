"""Per-tool latency, error rate and cost over a sliding window (in-process and from the DB)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from daytwo.store import Store, utcnow
from daytwo.store.tables.gateway import GatewayCall

__all__ = ["Telemetry", "ToolStats", "stats_from_db"]

log = logging.getLogger("daytwo.gateway.telemetry")


@dataclass(frozen=True)
class ToolStats:
    """What the planner reads: latency percentiles, error rate and cost in the window."""

    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    error_rate: float = 0.0
    cost_usd: float = 0.0
    calls: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


_EMPTY = ToolStats()


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _stats(samples: Iterable[tuple[float, bool, float]]) -> ToolStats:
    rows = list(samples)
    if not rows:
        return _EMPTY
    lat = sorted(r[0] for r in rows)
    errors = sum(1 for r in rows if not r[1])
    return ToolStats(
        p50_ms=round(_percentile(lat, 0.50), 3),
        p95_ms=round(_percentile(lat, 0.95), 3),
        p99_ms=round(_percentile(lat, 0.99), 3),
        error_rate=round(errors / len(rows), 4),
        cost_usd=round(sum(r[2] for r in rows), 6),
        calls=len(rows),
    )


class Telemetry:
    """Sliding window per tool in memory; call rows are written to the DB in batches.

    The rows are written by a daemon thread every ``flush_after_s`` seconds (and on
    :meth:`close`), so a call never waits for the database.
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        window_s: float = 300.0,
        max_samples: int = 10_000,
        flush_after_s: float = 1.0,
    ) -> None:
        self.store = store
        self.window_s = window_s
        self.max_samples = max_samples
        self.flush_after_s = flush_after_s
        self._samples: dict[str, deque[tuple[float, float, bool, float]]] = {}
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def record(
        self,
        tool: str,
        version: str,
        *,
        latency_ms: float,
        ok: bool,
        cost_usd: float = 0.0,
        agent: str | None = None,
        error: str | None = None,
    ) -> None:
        """Add one call (tool is the tool name; the window spans its versions)."""
        now = time.monotonic()
        with self._lock:
            dq = self._samples.get(tool)
            if dq is None:
                dq = self._samples[tool] = deque(maxlen=self.max_samples)
            dq.append((now, latency_ms, ok, cost_usd))
            if self.store is not None:
                self._pending.append(
                    {
                        "tool": tool,
                        "version": version,
                        "agent": agent,
                        "latency_ms": latency_ms,
                        "ok": ok,
                        "error": error,
                        "cost_usd": cost_usd,
                        "created_at": utcnow(),
                    }
                )
                if self._flusher is None:
                    self._start_flusher()

    def _start_flusher(self) -> None:
        """Write call rows from a daemon thread, never on the call path."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.flush_after_s):
                try:
                    self.flush()
                except Exception:  # keep the loop alive; the next flush retries
                    log.exception("writing tool call telemetry failed")

        self._flusher = threading.Thread(target=loop, name="daytwo-gateway-telemetry", daemon=True)
        self._flusher.start()

    def close(self) -> None:
        """Stop the background writer and flush what is pending."""
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(timeout=10)
            self._flusher = None
        self.flush()

    def snapshot(self, tool: str) -> ToolStats:
        """Stats of ``tool`` over the last ``window_s`` seconds in this process."""
        cutoff = time.monotonic() - self.window_s
        with self._lock:
            dq = self._samples.get(tool)
            if not dq:
                return _EMPTY
            while dq and dq[0][0] < cutoff:
                dq.popleft()
            rows = [(lat, ok, cost) for _, lat, ok, cost in dq]
        return _stats(rows)

    def tools(self) -> list[str]:
        """Tools with samples in this process."""
        with self._lock:
            return sorted(self._samples)

    def flush(self) -> int:
        """Write pending call rows in one transaction; return how many."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows or self.store is None:
            return 0
        with self.store.session(write=True) as s:
            s.bulk_insert_mappings(GatewayCall.__mapper__, rows)
        return len(rows)


def stats_from_db(store: Store, *, window_s: float = 300.0) -> dict[str, ToolStats]:
    """Stats per tool from the call log (every process), over the last ``window_s`` seconds."""
    since = utcnow() - timedelta(seconds=window_s)
    per_tool: dict[str, list[tuple[float, bool, float]]] = {}
    with store.session() as s:
        q = select(GatewayCall.tool, GatewayCall.latency_ms, GatewayCall.ok, GatewayCall.cost_usd)
        for tool, lat, ok, cost in s.execute(q.where(GatewayCall.created_at >= since)):
            per_tool.setdefault(tool, []).append((lat, ok, cost))
    return {tool: _stats(rows) for tool, rows in sorted(per_tool.items())}
