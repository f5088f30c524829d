"""Concurrent appends from many threads never fork the chain (SQLite and PostgreSQL)."""

from __future__ import annotations

import itertools
import threading

import pytest

from daytwo.store import Store
from daytwo.tracing.audit import AuditLog
from daytwo.tracing.signing import AuditSigner


@pytest.mark.slow
def test_concurrent_appends_keep_one_chain(store: Store) -> None:
    log = AuditLog(store, signer=AuditSigner.generate(), checkpoint_every=16)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(20):
                log.append("step", f"worker-{n}", data={"i": i})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    records = log.records()
    assert [r.seq for r in records] == list(range(1, 81))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(records))
    report = log.verify()
    assert report.ok, report.problem
    assert report.checkpoints == 5
