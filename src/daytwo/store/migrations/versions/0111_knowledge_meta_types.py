"""knowledge: typed metadata values (kind, num) for range and typed filters

Revision ID: 0111_knowledge_meta_types
Revises: 0110_knowledge_maintenance

Existing rows are typed again from each document's metadata (``kb_documents.metadata``),
the original JSON, so the number 1 and the string "1" are told apart.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from daytwo.store.base import JSONType

revision = "0111_knowledge_meta_types"
down_revision = "0110_knowledge_maintenance"
branch_labels = None
depends_on = None

# How daytwo.knowledge.filters typed a value at this revision, frozen here: a migration
# imports no layer above the store (tests/test_layers.py), and must not change meaning
# when that module changes later.
_DATE = re.compile(
    r"^\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$"
)


def _epoch(text: str) -> float | None:
    if len(text) > 40 or not _DATE.match(text):
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment.timestamp()


def _typed(value: Any) -> tuple[str, float | None] | None:
    """(kind, num) of a scalar metadata value; None for lists, objects, NaN, null."""
    if isinstance(value, bool):
        return "bool", None
    if isinstance(value, (int, float)):
        number = float(value)
        return ("num", number) if math.isfinite(number) else None
    if isinstance(value, str):
        when = _epoch(value[:500])
        return ("date", when) if when is not None else ("str", None)
    return None


def upgrade() -> None:
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
        for key, raw_value in (data or {}).items():
            typed = _typed(raw_value)
            if typed is not None and typed[0] != "str":
                kind, num = typed
                rows.append(
                    {"c": collection, "d": doc_id, "k": str(key)[:200], "kind_": kind, "num_": num}
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
