"""Knowledge tables: collections, index generations, documents, ACLs, chunks, tombstones.

The database is the system of record: documents, their chunks and the chunk vectors
(float32 blobs) live here; the ANN index files are derived from these rows and can be
rebuilt from them. Each write to a generation bumps its ``seq``; chunks carry the
``seq`` that wrote them and deletions leave a tombstone with theirs, so an index file
that remembers the ``seq`` it was saved at can be caught up.

The keyword index is not a table of the model: SQLite FTS5 (``kb_chunks_fts`` for
English chunks, ``kb_chunks_fts_x`` for other analyzers', with triggers on
``kb_chunks``) and the PostgreSQL ``fts`` / ``fts_config`` columns, their trigger and
GIN index are created by ``daytwo.knowledge.fts.ensure_fts`` (idempotent), because
Alembic cannot compare virtual tables or generated columns. Which analyzer a chunk is
indexed with is its generation's ``analyzer`` (:mod:`daytwo.store.analyzers`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from daytwo.store.base import Base, JSONType, UTCDateTime, utcnow

__all__ = [
    "KbAcl",
    "KbChunk",
    "KbCollection",
    "KbDocMeta",
    "KbDocument",
    "KbGeneration",
    "KbTombstone",
]


class KbCollection(Base):
    """A named collection of documents, its active generation and its fusion config."""

    __tablename__ = "kb_collections"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default")
    active_generation: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fusion: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KbGeneration(Base):
    """One index generation: embedder, chunking and ANN parameters, state and write seq."""

    __tablename__ = "kb_generations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    embedder: Mapped[str] = mapped_column(String(300))
    embedder_version: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    chunking: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    ann_params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    analyzer: Mapped[str] = mapped_column(String(32), default="english", server_default="english")
    """The keyword index's text analyzer (:mod:`daytwo.store.analyzers`)."""
    state: Mapped[str] = mapped_column(String(16), default="active")
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KbDocument(Base):
    """A source document: text, provenance, content hash for incremental sync."""

    __tablename__ = "kb_documents"

    collection: Mapped[str] = mapped_column(String(200), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), default="default", index=True)
    source: Mapped[str] = mapped_column(String(1024), default="api", index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class KbAcl(Base):
    """One ACL entry of a document: ``user:<name>`` or ``group:<name>``."""

    __tablename__ = "kb_acl"

    collection: Mapped[str] = mapped_column(String(200), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    entry: Mapped[str] = mapped_column(String(300), primary_key=True)

    __table_args__ = (Index("ix_kb_acl_entry", "collection", "entry"),)


class KbDocMeta(Base):
    """Flattened scalar metadata of a document, for metadata filters inside the search.

    ``kind`` is the value's JSON type (``str``, ``num``, ``bool``, or ``date`` for a string
    holding an ISO-8601 date); ``num`` the number, or a date's seconds since the epoch, so
    range filters compare numbers (:mod:`daytwo.knowledge.filters`).
    """

    __tablename__ = "kb_doc_meta"

    collection: Mapped[str] = mapped_column(String(200), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(8), default="str", server_default="str")
    num: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_kb_doc_meta_num", "collection", "key", "num"),)


class KbChunk(Base):
    """A chunk of a document in one generation, with its vector (float32 blob)."""

    __tablename__ = "kb_chunks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    generation: Mapped[str] = mapped_column(String(64))
    collection: Mapped[str] = mapped_column(String(200))
    doc_id: Mapped[str] = mapped_column(String(512))
    chunk_id: Mapped[str] = mapped_column(String(600))
    ordinal: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text)
    token_count: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("generation", "chunk_id", name="uq_kb_chunks_generation_chunk_id"),
        Index("ix_kb_chunks_doc", "generation", "collection", "doc_id"),
        Index("ix_kb_chunks_seq", "generation", "seq"),
        {"sqlite_autoincrement": True},
    )


class KbTombstone(Base):
    """A chunk deleted from a generation at ``seq`` (so ANN files can catch up)."""

    __tablename__ = "kb_tombstones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    generation: Mapped[str] = mapped_column(String(64))
    chunk_pk: Mapped[int] = mapped_column(BigInteger)
    seq: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_kb_tombstones_seq", "generation", "seq"),
        {"sqlite_autoincrement": True},
    )
