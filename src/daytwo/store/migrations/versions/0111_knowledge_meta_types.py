"""knowledge: typed metadata values (kind, num) for range and typed filters

Revision ID: 0111_knowledge_meta_types
Revises: 0110_knowledge_maintenance

Existing rows are typed again from each document's metadata (``kb_documents.metadata``),
the original JSON, so the number 1 and the string "1" are told apart.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType

revision = "0111_knowledge_meta_types"
down_revision = "0110_knowledge_maintenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from daytwo.knowledge.filters import typed_metadata

    with op.batch_alter_table("kb_doc_meta") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="str"))
        batch.add_column(sa.Column("num", sa.Float(), nullable=True))
    op.create_index("ix_kb_doc_meta_num", "kb_doc_meta", ["collection", "key", "num"])
    bind = op.get_bind()
    docs = sa.table(
        "kb_documents",
        sa.column("collection", sa.String),
        sa.column("doc_id", sa.String),
        sa.column("metadata", JSONType),
    )
    meta = sa.table(
        "kb_doc_meta",
        sa.column("collection", sa.String),
        sa.column("doc_id", sa.String),
        sa.column("key", sa.String),
        sa.column("kind", sa.String),
        sa.column("num", sa.Float),
    )
    update = (
        sa.update(meta)
        .where(
            meta.c.collection == sa.bindparam("c"),
            meta.c.doc_id == sa.bindparam("d"),
            meta.c.key == sa.bindparam("k"),
        )
        .values(kind=sa.bindparam("kind_"), num=sa.bindparam("num_"))
    )
    rows: list[dict[str, Any]] = []
    for collection, doc_id, raw in bind.execute(
        sa.select(docs.c.collection, docs.c.doc_id, docs.c.metadata)
    ):
        data = json.loads(raw) if isinstance(raw, str) else raw
        for key, value in typed_metadata(data or {}).items():
            if value.kind != "str":
                rows.append(
                    {"c": collection, "d": doc_id, "k": key, "kind_": value.kind, "num_": value.num}
                )
        if len(rows) >= 1000:
            bind.execute(update, rows)
            rows = []
    if rows:
        bind.execute(update, rows)


def downgrade() -> None:
    op.drop_index("ix_kb_doc_meta_num", table_name="kb_doc_meta")
    with op.batch_alter_table("kb_doc_meta") as batch:
        batch.drop_column("num")
        batch.drop_column("kind")
