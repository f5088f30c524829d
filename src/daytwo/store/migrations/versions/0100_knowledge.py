"""knowledge: collections, index generations, documents, ACLs, metadata, chunks, tombstones

Revision ID: 0100_knowledge
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType, UTCDateTime

revision = "0100_knowledge"
down_revision = "0001_core"
branch_labels = ("knowledge",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_collections",
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("active_generation", sa.String(64), nullable=True),
        sa.Column("fusion", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_kb_collections")),
    )
    op.create_table(
        "kb_generations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("embedder", sa.String(300), nullable=False),
        sa.Column("embedder_version", sa.String(64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("chunking", JSONType, nullable=False),
        sa.Column("ann_params", JSONType, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_generations")),
    )
    op.create_index("ix_kb_generations_collection", "kb_generations", ["collection"])
    op.create_table(
        "kb_documents",
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(512), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("collection", "doc_id", name=op.f("pk_kb_documents")),
    )
    op.create_index("ix_kb_documents_tenant", "kb_documents", ["tenant"])
    op.create_index("ix_kb_documents_source", "kb_documents", ["source"])
    op.create_table(
        "kb_acl",
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(512), nullable=False),
        sa.Column("entry", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("collection", "doc_id", "entry", name=op.f("pk_kb_acl")),
    )
    op.create_index("ix_kb_acl_entry", "kb_acl", ["collection", "entry"])
    op.create_table(
        "kb_doc_meta",
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(512), nullable=False),
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("collection", "doc_id", "key", name=op.f("pk_kb_doc_meta")),
    )
    op.create_table(
        "kb_chunks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("generation", sa.String(64), nullable=False),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("doc_id", sa.String(512), nullable=False),
        sa.Column("chunk_id", sa.String(600), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_chunks")),
        sa.UniqueConstraint("generation", "chunk_id", name="uq_kb_chunks_generation_chunk_id"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_kb_chunks_doc", "kb_chunks", ["generation", "collection", "doc_id"])
    op.create_index("ix_kb_chunks_seq", "kb_chunks", ["generation", "seq"])
    op.create_table(
        "kb_tombstones",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("generation", sa.String(64), nullable=False),
        sa.Column("chunk_pk", sa.BigInteger(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kb_tombstones")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_kb_tombstones_seq", "kb_tombstones", ["generation", "seq"])


def downgrade() -> None:
    for table in ("kb_tombstones", "kb_chunks", "kb_doc_meta", "kb_acl", "kb_documents"):
        op.drop_table(table)
    op.drop_table("kb_generations")
    op.drop_table("kb_collections")
