"""Retrieval inside a run: the run's tenant's collections, as the end user when given."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from daytwo.exceptions import NotFoundError
from daytwo.knowledge.service import KnowledgeBase
from daytwo.runtime.acting import acting_for
from daytwo.runtime.adapters import KnowledgeRetriever
from daytwo.server.ownership import claim
from daytwo.server.scoping import TenantRetriever, record_run_subject, run_subject
from daytwo.store import Store

from .helpers import Keys
from .test_runs import wait_done


def test_retrieval_as_the_key_or_on_behalf_of_the_end_user(store: Store, tmp_path: Path) -> None:
    kb = KnowledgeBase(store, tmp_path / "data", "hashing-384")
    try:
        kb.upsert_document("handbook", "pub", "refunds are processed within five days")
        kb.upsert_document(
            "handbook", "staff", "STAFF-ONLY refunds above 500 need a manager", acl=["group:staff"]
        )
        claim(store, "collection", "handbook", "acme", "collection", exists=False)
        retriever = TenantRetriever(KnowledgeRetriever(kb), store)

        def texts(principal: str, run_id: str) -> str:
            with acting_for(principal, run_id):
                hits = retriever.search(
                    "handbook", "refunds", principal=principal, k=5, mode="bm25"
                )
            return " ".join(str(h.get("text", "")) for h in hits)

        key = "acme/key:0123456789ab"
        assert "STAFF-ONLY" not in texts(key, "run-1")  # the key is no staff member
        record_run_subject(store, "run-2", "alice", ["staff"])
        seen = texts(key, "run-2")
        assert "STAFF-ONLY" in seen
        assert "refunds are processed" in seen
        record_run_subject(store, "run-3", "bob", ["customers"])
        assert "STAFF-ONLY" not in texts(key, "run-3")
        with pytest.raises(NotFoundError, match="no collection 'handbook'"):
            texts("globex/key:0123456789ab", "run-4")  # another tenant's collection
    finally:
        kb.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_started_on_behalf_of_a_user(run_client: TestClient, keys: Keys, store: Store) -> None:
    c = run_client
    op = Keys.header(keys.operator)
    body = {
        "agent": "support",
        "on_behalf_of": {"principal": "alice", "groups": ["staff"]},
        "session": "chat-7",
    }
    r = c.post("/api/v1/runs", json=body, headers=op)
    assert r.status_code == 202, r.text
    assert run_subject(store, r.json()["id"]) == ("alice", ["staff"])
    # The run records its conversation and end user (the explorer's session view).
    assert (r.json()["session"], r.json()["user"]) == ("chat-7", "alice")
    bad_session = {"agent": "support", "session": "a b"}
    assert c.post("/api/v1/runs", json=bad_session, headers=op).status_code == 422
    wait_done(c, r.json()["id"], keys.operator)
    bad = {"agent": "support", "on_behalf_of": {"principal": "a b|c", "groups": []}}
    assert c.post("/api/v1/runs", json=bad, headers=op).status_code == 422
    with store.session() as s:
        assert (
            s.scalar(sa.select(sa.func.count()).select_from(sa.table("server_run_subjects"))) == 1
        )
