"""The quickstart's "external agent" stage: a plain-Python agent (openai SDK + daytwo.sdk)
through the gateway, its trace a run with its cost, on the API and the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daytwo.server import KeyStore, create_app
from daytwo.server.quickstart import external_agent_stage
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

from .test_model_gateway import write_profiles


class _Summary:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None:
        self.rows.append({"stage": stage, "ok": ok, "detail": detail, **data})


@pytest.fixture
def upstream() -> Iterator[ScriptedModelServer]:
    with ScriptedModelServer(default="It arrives Thursday.", model="gpt-4o-mini") as server:
        yield server


def test_external_agent_stage(
    tmp_path: Path,
    sqlite_store: Store,
    upstream: ScriptedModelServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream")
    settings = Settings(
        data_dir=tmp_path / "data", database_url=sqlite_store.url, embedder="hashing-384"
    )
    write_profiles(settings.data_dir, upstream)
    summary = _Summary()
    run_id = external_agent_stage(summary, settings, sqlite_store, model="openai/gpt-4o-mini")
    [row] = summary.rows
    assert row["ok"]
    assert row["run_id"] == run_id
    assert "It arrives Thursday." in row["detail"]
    assert row["spans"] >= 4  # request, agent, tool, the gateway's chat call
    assert Decimal(row["cost_usd"]) > 0
    # On the API and the dashboard of tenant default (what the quickstart serves).
    viewer = KeyStore(sqlite_store).create(role="viewer", tenant="default")[1]
    app = create_app(settings, sqlite_store, with_runtime=False)
    with TestClient(app) as client:
        h = {"Authorization": f"Bearer {viewer}"}
        [run] = [r for r in client.get("/api/v1/runs", headers=h).json() if r["id"] == run_id]
        assert run["agent"] == "quickstart-support-agent"
        assert run["status"] == "succeeded"
        steps = client.get(f"/api/v1/runs/{run_id}/explain", headers=h).json()["steps"]
        text = " ".join(s["text"] for s in steps)
        assert "Called the model" in text
        assert "lookup_order" in text
        assert client.post("/login", data={"key": viewer}).status_code in (200, 303)
        page = client.get("/runs")
        assert page.status_code == 200
        assert run_id in page.text
