"""Fixtures of the knowledge tests: a knowledge base on both stores with the hashing embedder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daytwo.knowledge import HashingEmbedder, KnowledgeBase
from daytwo.store import Store


@pytest.fixture
def kb(store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    """A knowledge base with the cheap hashing embedder, on SQLite and on PostgreSQL."""
    base = KnowledgeBase(store, tmp_path / "data", embedder=HashingEmbedder())
    try:
        yield base
    finally:
        base.close()


@pytest.fixture
def sqlite_kb(sqlite_store: Store, tmp_path: Path) -> Iterator[KnowledgeBase]:
    """A knowledge base on SQLite only."""
    base = KnowledgeBase(sqlite_store, tmp_path / "data", embedder=HashingEmbedder())
    try:
        yield base
    finally:
        base.close()


def write_docs(root: Path, docs: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` and return it."""
    for rel, text in docs.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
