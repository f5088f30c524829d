"""Alembic environment: always run through daytwo.store.migrate with a live connection."""

from __future__ import annotations

from alembic import context

from daytwo.store import tables  # noqa: F401  (registers every table)
from daytwo.store.base import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only via daytwo.store.migrate
    raise RuntimeError("run migrations with `daytwo db upgrade`")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
