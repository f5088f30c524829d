"""Combining: the small jobs of concurrent threads, served together by one of them.

    queries = Combiner(hold=lambda: sessions_lock, serve=embed_many)
    vector = queries.submit(query)

``serve(held, items)`` does a batch's work and returns one result per item, in order;
``hold()`` is the context (a lock, a transaction) that work needs. The first caller
that finds no batch under way leads: it enters ``hold()``, takes every item queued by
then (its own included), serves them and leaves ``hold()``; callers that arrive
meanwhile queue, and the first of them leads the next batch. Items queue while the
leader waits for ``hold()``, so a busy resource makes batches larger, not queues
longer. A lone caller pays one lock and one list more than doing the work itself.

``submit`` returns only after ``hold()`` was left without an error: for a transaction,
a result is acknowledged only once it committed. An error in ``serve`` or in leaving
``hold()`` is raised to every caller of that batch, and to them only.

Used by the gateway's idempotency ledger (:mod:`daytwo.store.group_commit`: writes of
concurrent tool calls share commits) and by the MiniLM embedder (concurrent search
queries share one ONNX run).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

__all__ = ["Combiner"]

Item = TypeVar("Item")
Result = TypeVar("Result")
Held = TypeVar("Held")


class _Job(Generic[Item, Result]):
    __slots__ = ("done", "error", "item", "lead", "result")

    def __init__(self, item: Item) -> None:
        self.item = item
        self.done: threading.Event | None = None  # a follower's, to wait on
        self.lead = False
        self.result: Result | None = None
        self.error: BaseException | None = None


class Combiner(Generic[Item, Held, Result]):
    """Items of concurrent callers, served in batches by the caller that leads."""

    def __init__(
        self,
        hold: Callable[[], AbstractContextManager[Held]],
        serve: Callable[[Held, list[Item]], Sequence[Result]],
    ) -> None:
        self._hold = hold
        self._serve = serve
        self._lock = threading.Lock()
        self._queue: list[_Job[Item, Result]] = []
        self._leading = False
        self.batches = 0
        """Batches served, and the items they held: items share batches when
        ``items`` exceeds ``batches``."""
        self.items = 0

    def queued(self) -> int:
        """Items waiting for a batch (a leader waiting for ``hold()`` included)."""
        with self._lock:
            return len(self._queue)

    def submit(self, item: Item) -> Result:
        """``item``'s result, once the batch holding it was served (or its error)."""
        mine: _Job[Item, Result] = _Job(item)
        with self._lock:
            self._queue.append(mine)
            lead = not self._leading
            if lead:
                self._leading = True
            else:
                mine.done = threading.Event()
        if mine.done is not None:
            mine.done.wait()
            lead = mine.lead  # handed the lead: its item is still queued
        if lead:
            self._lead()
        if mine.error is not None:
            raise mine.error
        return mine.result  # type: ignore[return-value]  # set with no error

    def _take(self) -> list[_Job[Item, Result]]:
        with self._lock:
            batch, self._queue = self._queue, []
        return batch

    def _lead(self) -> None:
        """Serve the queued items as one batch; hand the lead on."""
        batch: list[_Job[Item, Result]] = []
        try:
            with self._hold() as held:
                batch = self._take()
                results = self._serve(held, [job.item for job in batch])
                if len(results) != len(batch):  # inside: a transaction rolls back
                    raise RuntimeError(f"served {len(results)} results for {len(batch)} items")
            for job, result in zip(batch, results, strict=True):
                job.result = result
            self.batches += 1
            self.items += len(batch)
        except BaseException as exc:
            batch = batch or self._take()  # ``hold()`` failed: the leader's own is queued
            for job in batch:
                job.error = exc
        finally:
            with self._lock:
                following = self._queue[0] if self._queue else None
                self._leading = following is not None
            if following is not None:
                assert following.done is not None  # queued while a batch was under way
                following.lead = True
                following.done.set()
            for job in batch:
                if job.done is not None:
                    job.done.set()
