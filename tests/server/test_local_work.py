"""Search requests run on the local-work threads: at most ``request_cpu_threads`` at once."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from daytwo.exceptions import ConfigError
from daytwo.knowledge.service import KnowledgeBase
from daytwo.server import create_app
from daytwo.settings import Settings, load_settings
from daytwo.store import Store

from .helpers import Keys, make_keys


class _Counting(KnowledgeBase):
    """The real knowledge base; records how many searches run at the same time."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._count_lock = threading.Lock()
        self.active = 0
        self.most = 0

    def run(self, request: Any, **kwargs: Any) -> Any:
        with self._count_lock:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.15)  # long enough for every request to be in flight
            return super().run(request, **kwargs)
        finally:
            with self._count_lock:
                self.active -= 1


def _most_at_once(settings: Settings, store: Store, requests: int) -> tuple[int, list[int]]:
    kb = _Counting(store, settings.data_dir, settings.embedder)
    app = create_app(settings, store, with_runtime=False, knowledge=kb)
    keys: Keys = make_keys(store)
    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.put(
            "/api/v1/knowledge/collections/help/documents",
            json={"doc_id": "shipping", "text": "Orders ship within two business days."},
            headers=Keys.header(keys.operator),
        )
        assert r.status_code == 200, r.text

        def search(_: int) -> int:
            r = c.post(
                "/api/v1/knowledge/collections/help/search",
                json={"query": "when do orders ship", "mode": "bm25"},
                headers=Keys.header(keys.viewer),
            )
            assert r.status_code == 200, r.text
            assert r.json()[0]["doc_id"] == "shipping"
            return r.status_code

        with ThreadPoolExecutor(requests) as pool:
            codes = list(pool.map(search, range(requests)))
    return kb.most, codes


@pytest.mark.parametrize("threads", [1, 3])
def test_searches_at_once_are_bounded_by_request_cpu_threads(
    settings: Settings, store: Store, threads: int
) -> None:
    most, codes = _most_at_once(
        settings.model_copy(update={"request_cpu_threads": threads}), store, 6
    )
    assert codes == [200] * 6
    # Bounded by the setting, and reaching it: nothing else serialises the searches.
    assert most == threads


def test_request_cpu_threads_defaults_to_the_cpu_count_and_refuses_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi import FastAPI, Request

    from daytwo.server.local_work import local_threads

    app = FastAPI()
    app.state.settings = Settings()
    request = Request({"type": "http", "app": app})
    assert local_threads(request) == (os.cpu_count() or 1)
    monkeypatch.setenv("DAYTWO_REQUEST_CPU_THREADS", "0")
    with pytest.raises(ConfigError, match="request_cpu_threads"):
        load_settings()
