"""Runtime fixtures: one launched in-process runtime (DBOS is a process singleton)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daytwo.runtime import PythonTools, Runtime, Services, StaticTelemetry
from daytwo.store import Store


@pytest.fixture
def tools() -> PythonTools:
    return PythonTools()


@pytest.fixture
def telemetry() -> StaticTelemetry:
    return StaticTelemetry()


@pytest.fixture
def runtime(
    sqlite_store: Store, tmp_path: Path, tools: PythonTools, telemetry: StaticTelemetry
) -> Iterator[Runtime]:
    rt = Runtime(sqlite_store, Services(tools=tools, telemetry=telemetry), data_dir=tmp_path)
    rt.launch()
    try:
        yield rt
    finally:
        rt.shutdown()
