"""Fixtures of the server tests: the app over a migrated store, keys of two tenants."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from daytwo.server import create_app
from daytwo.server.ownership import claim, grant
from daytwo.server.services import audit_log
from daytwo.settings import Settings
from daytwo.store import Store
from daytwo.testing import ScriptedModelServer

from .helpers import SUPPORT_ANSWER, Keys, make_keys, sample_services, support_spec


@pytest.fixture
def settings(tmp_path: Path, store: Store) -> Settings:
    # The hashing embedder keeps the knowledge tests fast (no ONNX model load).
    return Settings(data_dir=tmp_path / "data", database_url=store.url, embedder="hashing-384")


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    """The app without an agent runtime (fast: no DBOS)."""
    return create_app(settings, store, with_runtime=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(store: Store) -> Keys:
    return make_keys(store)


@pytest.fixture
def model_server() -> Iterator[ScriptedModelServer]:
    # A model id the profiles price, so the cost ledger shows real dollars.
    with ScriptedModelServer(default=SUPPORT_ANSWER, model="gpt-4o-mini") as server:
        yield server


def make_runtime(settings: Settings, store: Store, model_url: str) -> Any:
    """A runtime (not launched) for the sample support agent, registered in ``store``."""
    from daytwo.runtime import Runtime

    services = sample_services(model_url, audit_log(settings, store))
    schema = "dbos" if store.is_sqlite else f"dbos_{uuid.uuid4().hex[:10]}"
    rt = Runtime(store, services, data_dir=settings.data_dir, dbos_schema=schema)  # type: ignore[arg-type]
    rt.registry.register(support_spec())  # type: ignore[arg-type]
    claim(store, "agent", "support", "acme", "agent", exists=False)  # as if acme registered it
    for tool in ("orders_status_cached", "orders_status_live"):
        grant(store, "tool", tool, "acme")  # the sample tools, shared by the operator
    grant(store, "collection", "kestrel-support", "acme")
    return rt


@pytest.fixture
def run_client(
    settings: Settings, store: Store, model_server: ScriptedModelServer
) -> Iterator[TestClient]:
    """A client of the app with a launched runtime serving the sample support agent."""
    rt = make_runtime(settings, store, model_server.base_url)
    app = create_app(settings, store, runtime=rt)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
    finally:
        if not store.is_sqlite:
            with store.engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{rt.dbos_schema}" CASCADE'))
