"""Combiner: what happens when the context a batch needs cannot be entered."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from daytwo._combining import Combiner


def test_a_failed_hold_fails_the_queued_items_and_the_next_caller_leads() -> None:
    entered, release = threading.Event(), threading.Event()
    attempts: list[int] = []

    @contextmanager
    def hold() -> Iterator[None]:
        attempts.append(1)
        if len(attempts) == 1:  # the first leader waits, then fails to get the resource
            entered.set()
            release.wait(5)
            raise TimeoutError("resource busy")
        yield None

    combined: Combiner[int, None, int] = Combiner(hold, lambda _, items: [i * 10 for i in items])
    errors: dict[int, BaseException] = {}

    def submit(i: int) -> None:
        try:
            combined.submit(i)
        except TimeoutError as exc:
            errors[i] = exc

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(3)]
    threads[0].start()
    assert entered.wait(5)
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 5
    while combined.queued() < 3:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    release.set()
    for t in threads:
        t.join(5)
    assert sorted(errors) == [0, 1, 2]  # everything queued behind the failed hold
    assert combined.queued() == 0
    assert combined.submit(4) == 40  # the lead was given back: the next caller serves
    assert (combined.batches, combined.items) == (1, 1)


def test_serve_must_return_one_result_per_item() -> None:
    @contextmanager
    def hold() -> Iterator[None]:
        yield None

    combined: Combiner[int, None, int] = Combiner(hold, lambda _, items: [])
    with pytest.raises(RuntimeError, match="served 0 results for 1 items"):
        combined.submit(1)
    assert combined.queued() == 0
