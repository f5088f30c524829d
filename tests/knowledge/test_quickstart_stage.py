"""The knowledge stage of the quickstart on the real MiniLM embedder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daytwo.knowledge.quickstart import SAMPLE_KB, quickstart_stage
from daytwo.settings import Settings
from daytwo.store import Store


class Recorder:
    def __init__(self) -> None:
        self.stages: list[dict[str, Any]] = []

    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None:
        self.stages.append({"stage": stage, "ok": ok, "detail": detail, **data})


def test_sample_kb_has_a_private_section() -> None:
    public = list((SAMPLE_KB / "public").iterdir())
    private = list((SAMPLE_KB / "private").iterdir())
    inbox = sorted(p.name for p in (SAMPLE_KB / "inbox").iterdir())
    assert inbox == [
        "quota-upgrade-thread.mbox",
        "scanned-deletion-request.png",
        "voicemail-northwind.ogg",
    ]
    assert sum((SAMPLE_KB / "inbox" / n).stat().st_size for n in inbox) < 40_000  # kept small
    assert 15 <= len(public) + len(private) <= 30
    assert {p.suffix for p in public} == {".md", ".txt", ".html"}
    assert private


@pytest.mark.embedder
def test_quickstart_stage_searches_as_two_principals(tmp_path: Path, sqlite_store: Store) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    summary = Recorder()
    quickstart_stage(summary, settings, sqlite_store)
    (stage,) = summary.stages
    assert stage["ok"], stage
    assert stage["staff_hits"][0] == "refund-approval-limits.md"
    assert "refund-approval-limits.md" not in stage["customer_hits"]
    assert stage["unknown_principal_hits"] == 0
    from daytwo.knowledge import media

    hits = stage["media_hits"]
    assert hits["e-mail thread"].startswith("mail:")
    if media.available("image") and media.available("audio"):
        assert hits["scanned page"] == "scanned-deletion-request.png", stage
        assert hits["voicemail"].startswith("voicemail-northwind.ogg"), stage
        assert "scanned page: scanned-deletion-request.png" in stage["detail"]
    again = Recorder()
    quickstart_stage(again, settings, sqlite_store)  # rerun: unchanged, still ok
    assert again.stages[0]["ok"]
