"""Tombstone ratio, recall probe, online vacuum with searches running, auto-vacuum."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from daytwo.exceptions import InputError, NotFoundError
from daytwo.knowledge import KnowledgeBase
from daytwo.knowledge.maintenance import auto_vacuum, health, tombstone_ratio, vacuum
from daytwo.store import Store

WORDS = "apple banana cherry damson elder fig grape hazel iris jasmine kiwi lemon mango".split()


@pytest.fixture
def kb(store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    base = KnowledgeBase(store, tmp_path / "data", embedder="hashing-384")
    yield base
    base.close()


def fill(kb: KnowledgeBase, n: int) -> None:
    for i in range(n):
        words = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(12))
        kb.upsert_document("c", f"d{i:03d}", f"uniq{i} {words}")


def test_tombstones_recall_and_vacuum(kb: KnowledgeBase) -> None:
    fill(kb, 120)
    gen = kb.active_generation("c")
    assert tombstone_ratio(kb, gen)["tombstones"] == 0
    for i in range(0, 120, 2):
        kb.delete_document("c", f"d{i:03d}")
    ratio = tombstone_ratio(kb, gen)
    assert ratio["tombstones"] == 60
    assert ratio["vectors"] == 60
    assert ratio["tombstone_ratio"] == 0.5
    report = health(kb, "c", samples=20)["generations"][0]
    assert report["tombstone_ratio"] == 0.5
    assert report["recall_at_10"] is not None
    assert 0.9 <= report["recall_at_10"] <= 1.0
    result = vacuum(kb, "c")
    assert result["generations"][0]["vectors"] == 60
    assert result["generations"][0]["tombstones_removed"] == 60
    after = tombstone_ratio(kb, gen)
    assert after["tombstone_ratio"] == 0.0
    assert after["last_vacuum"] is not None
    assert len(kb.index_for(gen)) == 60
    assert health(kb, "c", samples=20)["generations"][0]["recall_at_10"] == 1.0
    # A reopened knowledge base loads the compacted file.
    again = KnowledgeBase(kb.store, kb.data_dir, embedder="hashing-384")
    assert len(again.index_for(gen)) == 60
    hits = again.search("c", "uniq7", "bob", groups=["g"], mode="dense", k=3)
    assert hits[0].doc_id == "d007"


def test_searches_keep_working_during_vacuum(kb: KnowledgeBase) -> None:
    fill(kb, 150)
    for i in range(0, 150, 3):
        kb.delete_document("c", f"d{i:03d}")
    kept = [i for i in range(150) if i % 3]
    failures: list[str] = []
    done = threading.Event()
    count = 0

    def loop() -> None:
        nonlocal count
        while not done.is_set() or count < 10:
            i = kept[count % len(kept)]
            try:
                hits = kb.search("c", f"uniq{i}", "bob", groups=["g"], k=5)
                if f"d{i:03d}" not in {h.doc_id for h in hits}:
                    failures.append(f"d{i:03d} missing")
            except Exception as exc:
                failures.append(repr(exc))
            count += 1

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        for _ in range(3):
            vacuum(kb, "c")
            kb.upsert_document("c", "late", "uniqlate written during the vacuums")
    finally:
        done.set()
        thread.join()
    assert failures == []
    assert count >= 10
    assert kb.search("c", "uniqlate", "bob", groups=["g"], k=1)[0].doc_id == "late"


def test_auto_vacuum_threshold(kb: KnowledgeBase) -> None:
    fill(kb, 40)
    for i in range(5):
        kb.delete_document("c", f"d{i:03d}")
    assert auto_vacuum(kb, "c", threshold=0.2, storage=False) is None  # 5/40 = 0.125
    for i in range(5, 15):
        kb.delete_document("c", f"d{i:03d}")
    result = auto_vacuum(kb, "c", threshold=0.2, storage=False)
    assert result is not None
    assert result["triggered_by"]["max_tombstone_ratio"] == 0.375
    assert tombstone_ratio(kb, kb.active_generation("c"))["tombstone_ratio"] == 0.0
    with pytest.raises(InputError, match="threshold"):
        auto_vacuum(kb, "c", threshold=0)
    with pytest.raises(NotFoundError, match="does not exist"):
        vacuum(kb, "nope")
