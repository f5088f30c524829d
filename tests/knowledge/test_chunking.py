"""Token-aware chunking: sizes and overlap in the embedder's tokens, titles, stable ids."""

from __future__ import annotations

import pytest

from daytwo.exceptions import ConfigError
from daytwo.knowledge import HashingEmbedder
from daytwo.knowledge.chunking import ChunkingConfig, chunk_document, embed_text


def test_windows_overlap_and_stable_ids() -> None:
    spans = HashingEmbedder().token_spans
    text = " ".join(f"w{i}" for i in range(100))
    chunks = chunk_document("doc", "", text, ChunkingConfig(size=30, overlap=10), spans)
    assert [c.chunk_id for c in chunks] == [f"doc#{i}" for i in range(len(chunks))]
    assert all(c.token_count <= 30 for c in chunks)
    assert chunks[0].text.split()[-10:] == chunks[1].text.split()[:10]
    covered = {w for c in chunks for w in c.text.split()}
    assert covered == set(text.split())
    again = chunk_document("doc", "", text, ChunkingConfig(size=30, overlap=10), spans)
    assert again == chunks


def test_title_is_carried_and_counted() -> None:
    spans = HashingEmbedder().token_spans
    text = " ".join(f"w{i}" for i in range(60))
    chunks = chunk_document("d", "Refund policy", text, ChunkingConfig(size=20, overlap=0), spans)
    assert all(c.title == "Refund policy" for c in chunks)
    assert all(c.token_count == 18 for c in chunks[:-1])  # 20 minus the 2 title tokens
    assert embed_text(chunks[0].title, chunks[0].text).startswith("Refund policy\n")


def test_bad_configs_and_empty_text() -> None:
    with pytest.raises(ConfigError):
        ChunkingConfig(size=4)
    with pytest.raises(ConfigError):
        ChunkingConfig(size=50, overlap=50)
    assert chunk_document("d", "", "   ", ChunkingConfig(), HashingEmbedder().token_spans) == []


@pytest.mark.embedder
def test_minilm_tokens_decide_the_size() -> None:
    from daytwo.knowledge.embedders import get_embedder

    embedder = get_embedder("minilm-l6-int8")
    text = "Unbelievably, tokenisation splits uncommonwords into wordpieces. " * 40
    chunks = chunk_document("d", "", text, ChunkingConfig(size=64, overlap=8), embedder.token_spans)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(embedder.token_spans(chunk.text)) <= 64
