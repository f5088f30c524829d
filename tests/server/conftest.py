"""Fixtures of the server tests: the app over a migrated store, keys of two tenants."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from daytwo.server import create_app
from daytwo.settings import Settings
from daytwo.store import Store

from .helpers import Keys, make_keys


@pytest.fixture
def settings(tmp_path: Path, store: Store) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=store.url)


@pytest.fixture
def app(settings: Settings, store: Store) -> FastAPI:
    return create_app(settings, store)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def keys(store: Store) -> Keys:
    return make_keys(store)
