"""The runtime stage of the quickstart on the real local LLM, embedder and gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daytwo.runtime.quickstart import QUESTIONS, quickstart_stage
from daytwo.settings import Settings
from daytwo.store import Store


class Recorder:
    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None:
        self.stages.append({"stage": stage, "ok": ok, "detail": detail, **data})


@pytest.mark.slow
@pytest.mark.local_model
@pytest.mark.embedder
@pytest.mark.timeout(1200)  # several real local-model runs; minutes on a loaded machine
def test_quickstart_runs_the_support_agent(tmp_path: Path, sqlite_store: Store) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    summary = Recorder()
    quickstart_stage(summary, settings, sqlite_store)
    (stage,) = summary.stages
    assert stage["stage"] == "runtime"
    assert stage["runs"] == len(QUESTIONS)
    assert stage["ok"], stage
    for run in stage["trace"]:
        assert [s.split(":")[0] for s in run["steps"]] == ["docs", "order", "answer"]
        assert run["choice"] == "orders_status_cached"
    assert stage["tokens"] > 0
