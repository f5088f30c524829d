"""Fixtures of the tracing tests: tracing installed on a fresh store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from daytwo.store import Store
from daytwo.tracing import TracingHandle, setup_tracing


@pytest.fixture(params=["thread", "process"])
def tracing(store: Store, request: pytest.FixtureRequest) -> Iterator[TracingHandle]:
    """Tracing that stores spans in ``store`` (SQLite and PostgreSQL), with the
    in-thread writer and with the writer process."""
    handle = setup_tracing(store, writer=request.param)
    try:
        yield handle
    finally:
        handle.shutdown()


@pytest.fixture
def sqlite_tracing(sqlite_store: Store) -> Iterator[TracingHandle]:
    """Tracing that stores spans in a SQLite store."""
    handle = setup_tracing(sqlite_store)
    try:
        yield handle
    finally:
        handle.shutdown()
