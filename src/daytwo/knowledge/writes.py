"""The chunk-write primitive: every change to a generation's chunks goes through here.

A write to a generation bumps its ``seq``, leaves a tombstone (with that seq) for every
chunk it removes and stamps the chunks it adds with it, in the caller's transaction:
that is what lets an ANN index file catch up from the database (chunks with a higher
seq, tombstones with a higher seq) after a restart or a crash. Ingest, the backfill of
a shadow generation and erase all write through :func:`replace_chunks` (or its two
halves, :func:`bump_seq` and :func:`write_chunks`, when the seq must be taken first).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.orm import Session

from daytwo.knowledge.ann import encode_vector
from daytwo.knowledge.chunking import ChunkingConfig, chunk_document, embed_text
from daytwo.knowledge.embedders import Embedder
from daytwo.store.tables.knowledge import KbChunk, KbGeneration, KbTombstone

__all__ = ["Piece", "bump_seq", "embed_pieces", "replace_chunks", "write_chunks"]

Piece = tuple[Any, npt.NDArray[np.float32]]
"""A chunk (:class:`daytwo.knowledge.chunking.Chunk`) and its vector."""


def embed_pieces(
    embedder: Embedder, config: ChunkingConfig, docs: Sequence[tuple[str, str, str]]
) -> dict[str, list[Piece]]:
    """Chunk and embed ``(doc_id, title, text)`` documents: their pieces by doc id."""
    chunks = [
        c
        for doc_id, title, text in docs
        for c in chunk_document(doc_id, title, text, config, embedder.token_spans)
    ]
    if not chunks:
        return {doc_id: [] for doc_id, _, _ in docs}
    vectors = embedder.embed([embed_text(c.title, c.text) for c in chunks])
    out: dict[str, list[Piece]] = {doc_id: [] for doc_id, _, _ in docs}
    for i, c in enumerate(chunks):
        out[c.doc_id].append((c, vectors[i]))
    return out


def bump_seq(session: Session, generation: str) -> int:
    """Move the generation's write seq on by one and return it (a write: it takes the
    write lock first on SQLite)."""
    session.execute(
        sa.update(KbGeneration)
        .where(KbGeneration.id == generation)
        .values(seq=KbGeneration.seq + 1)
    )
    return int(
        session.scalar(sa.select(KbGeneration.seq).where(KbGeneration.id == generation)) or 0
    )


def write_chunks(
    session: Session, generation: str, collection: str, seq: int, pieces: Sequence[Piece]
) -> None:
    """Add chunks (with their vectors) to a generation at ``seq``."""
    if not pieces:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _copy_chunks(connection, generation, collection, seq, pieces)
        return
    session.add_all(
        KbChunk(
            generation=generation,
            collection=collection,
            doc_id=c.doc_id,
            chunk_id=c.chunk_id,
            ordinal=c.ordinal,
            title=c.title,
            text=c.text,
            token_count=c.token_count,
            vector=encode_vector(v),
            seq=seq,
        )
        for c, v in pieces
    )


_COPY_CHUNKS = (
    "COPY kb_chunks (generation, collection, doc_id, chunk_id, ordinal, title, text, "
    "token_count, vector, seq) FROM STDIN"
)


def _copy_chunks(
    connection: sa.Connection, generation: str, collection: str, seq: int, pieces: Sequence[Piece]
) -> None:
    """The chunks through ``COPY``, in the session's transaction (PostgreSQL).

    The ORM's multi-row ``INSERT ... RETURNING`` of a batch is one statement of some
    2,500 parameters that psycopg parses afresh each time, with a unit-of-work object
    per chunk whose ids nobody reads (the ANN index catches up from the table): half a
    second of a 256-document batch. ``COPY`` streams the rows; the triggers, the
    generated tsvector and the indexes see them as they see inserted rows. A failure
    raises the :class:`sqlalchemy.exc.DBAPIError` an ORM insert would have.
    """
    import psycopg

    raw: Any = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(_COPY_CHUNKS) as copy:
            for c, v in pieces:
                copy.write_row(
                    (
                        generation,
                        collection,
                        c.doc_id,
                        c.chunk_id,
                        c.ordinal,
                        c.title,
                        c.text,
                        c.token_count,
                        encode_vector(v),
                        seq,
                    )
                )
    except psycopg.Error as exc:
        raise sa.exc.DBAPIError.instance(
            _COPY_CHUNKS, None, exc, psycopg.Error, dialect=connection.dialect
        ) from exc


def replace_chunks(
    session: Session,
    generation: str,
    collection: str,
    doc_ids: Sequence[str],
    pieces: Sequence[Piece] = (),
) -> tuple[int, int]:
    """Remove the chunks of ``doc_ids`` from a generation (tombstoned) and add ``pieces``,
    at a new seq; return (seq, chunks removed)."""
    seq = bump_seq(session, generation)
    old: list[int] = []
    if doc_ids:
        old = list(
            session.scalars(
                sa.select(KbChunk.id).where(
                    KbChunk.generation == generation,
                    KbChunk.collection == collection,
                    KbChunk.doc_id.in_(list(doc_ids)),
                )
            )
        )
        if old:
            session.add_all(KbTombstone(generation=generation, chunk_pk=pk, seq=seq) for pk in old)
            session.execute(sa.delete(KbChunk).where(KbChunk.id.in_(old)))
    write_chunks(session, generation, collection, seq, pieces)
    return seq, len(old)
