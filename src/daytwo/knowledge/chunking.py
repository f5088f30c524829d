"""Token-aware chunking with the embedder's own tokenizer.

Size and overlap are counted in the embedder's tokens; each chunk keeps the exact
character span of its tokens (so no text is rewritten), the document title is carried
into each chunk's embedded text, and chunk ids are stable: ``<doc_id>#<ordinal>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from daytwo.exceptions import ConfigError

__all__ = ["Chunk", "ChunkingConfig", "chunk_document", "embed_text"]


@dataclass(frozen=True)
class ChunkingConfig:
    """Chunk size and overlap in tokens of the generation's embedder."""

    size: int = 200
    overlap: int = 40

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ConfigError(f"chunk size {self.size} is too small", hint="use at least 8 tokens")
        if not 0 <= self.overlap < self.size:
            raise ConfigError(
                f"chunk overlap {self.overlap} must be >= 0 and below the size {self.size}",
                hint="for example size 200, overlap 40",
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored on the generation."""
        return {"size": self.size, "overlap": self.overlap}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkingConfig:
        """Inverse of :meth:`to_dict`."""
        return cls(size=int(data.get("size", 200)), overlap=int(data.get("overlap", 40)))


@dataclass(frozen=True)
class Chunk:
    """One chunk of a document."""

    chunk_id: str
    doc_id: str
    ordinal: int
    title: str
    text: str
    token_count: int


def embed_text(title: str, text: str) -> str:
    """The text embedded for a chunk: the title carried in front of the chunk text."""
    return f"{title}\n{text}" if title else text


def chunk_document(
    doc_id: str,
    title: str,
    text: str,
    config: ChunkingConfig,
    token_spans: Callable[[str], list[tuple[int, int]]],
) -> list[Chunk]:
    """Split ``text`` into overlapping windows of ``config.size`` tokens."""
    spans = token_spans(text)
    if not spans:
        body = text.strip()
        if not body and not title:
            return []
        return [Chunk(f"{doc_id}#0", doc_id, 0, title, body, 0)]
    # Leave room for the title, which is embedded with every chunk.
    title_tokens = len(token_spans(title)) if title else 0
    size = max(8, config.size - min(title_tokens, config.size // 2))
    overlap = min(config.overlap, size - 1)
    step = size - overlap
    chunks: list[Chunk] = []
    start = 0
    while True:
        window = spans[start : start + size]
        piece = text[window[0][0] : window[-1][1]]
        ordinal = len(chunks)
        chunks.append(Chunk(f"{doc_id}#{ordinal}", doc_id, ordinal, title, piece, len(window)))
        if start + size >= len(spans):
            break
        start += step
    return chunks
