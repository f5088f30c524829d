"""What a source yields: documents and the items it skipped, and the base of the sources.

The readers of each kind of file (:mod:`~daytwo.knowledge.mail`,
:mod:`~daytwo.knowledge.tickets`, :mod:`~daytwo.knowledge.media`) produce these, and
:mod:`~daytwo.knowledge.sources` gathers them into a source; they sit below both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Skipped", "Source", "SourceDocument"]


@dataclass(frozen=True)
class SourceDocument:
    """A document read from a source."""

    doc_id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    acl: tuple[str, ...] | None = None
    """The document's own readers (the people on an e-mail thread, the agents for an
    internal ticket comment), or None for the ingest's ACL. When set, it replaces the
    ingest's default ``group:everyone``; entries given explicitly (``--acl``) are added."""


@dataclass(frozen=True)
class Skipped:
    """Something a source could not read, and why."""

    item: str
    reason: str


class Source:
    """Base of the sources: ``key`` identifies it, ``read()`` yields documents and skips."""

    key: str = ""
    reuse: Callable[[str, str], list[SourceDocument]] | None = None
    """Set by the ingest: (blob path, SHA-256) → the documents already derived from that
    file in the collection, so images and recordings are not OCR'd/transcribed again."""
    read_progress: Callable[[str, float, float], None] | None = None
    """Set by the ingest: (item, done, total) while a long item is read (a recording's
    seconds transcribed), for a progress bar."""

    def read(self) -> Iterator[SourceDocument | Skipped]:
        """Every document of the source (and every item skipped, with its reason)."""
        raise NotImplementedError
