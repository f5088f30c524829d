"""runtime: a trigram index over a run's inputs, outputs and error (explorer free text)

Revision ID: 0505_runtime_run_text
Revises: 0504_runtime_run_latency
"""

# ruff: noqa: E501  (frozen SQL, one statement per line)
from __future__ import annotations

from alembic import op

revision = "0505_runtime_run_text"
down_revision = "0504_runtime_run_latency"
branch_labels = None
depends_on = None

# The DDL as it was when this revision was written (frozen here: a later change to
# daytwo.store.run_text needs its own revision, not an edit of this one).
SQLITE_DDL = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS runtime_runs_text USING fts5(inputs, outputs, error, content='runtime_runs', content_rowid='rowid', tokenize='trigram')",
    "CREATE TRIGGER IF NOT EXISTS runtime_runs_text_ai AFTER INSERT ON runtime_runs BEGIN INSERT INTO runtime_runs_text(rowid, inputs, outputs, error) VALUES (new.rowid, new.inputs, new.outputs, new.error); END",
    "CREATE TRIGGER IF NOT EXISTS runtime_runs_text_ad AFTER DELETE ON runtime_runs BEGIN INSERT INTO runtime_runs_text(runtime_runs_text, rowid, inputs, outputs, error) VALUES ('delete', old.rowid, old.inputs, old.outputs, old.error); END",
    "CREATE TRIGGER IF NOT EXISTS runtime_runs_text_au AFTER UPDATE OF inputs, outputs, error ON runtime_runs BEGIN INSERT INTO runtime_runs_text(runtime_runs_text, rowid, inputs, outputs, error) VALUES ('delete', old.rowid, old.inputs, old.outputs, old.error); INSERT INTO runtime_runs_text(rowid, inputs, outputs, error) VALUES (new.rowid, new.inputs, new.outputs, new.error); END",
]
SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS runtime_runs_text_ai",
    "DROP TRIGGER IF EXISTS runtime_runs_text_ad",
    "DROP TRIGGER IF EXISTS runtime_runs_text_au",
    "DROP TABLE IF EXISTS runtime_runs_text",
]
SQLITE_REBUILD = "INSERT INTO runtime_runs_text(runtime_runs_text) VALUES ('rebuild')"
PG_EXTENSION = "CREATE EXTENSION IF NOT EXISTS pg_trgm"
# The operator class is qualified with the schema the extension lives in: an extension
# is one per database, installed in whichever schema was first on the search path (or
# where the DBA put it, e.g. ``extensions``), which need not be on this store's path.
PG_EXTENSION_SCHEMA = "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'"
PG_INDEX = "CREATE INDEX IF NOT EXISTS ix_runtime_runs_text_trgm ON runtime_runs USING gin ((COALESCE(CAST(inputs AS TEXT), '') || ' ' || COALESCE(CAST(outputs AS TEXT), '') || ' ' || COALESCE(error, '')) {opclass})"
PG_DROP = [
    "DROP INDEX IF EXISTS ix_runtime_runs_text_trgm",
]


def upgrade() -> None:
    # The explorer's free text was a scan of every row the other filters leave; a
    # fragment found in no run read the whole table. See daytwo.store.run_text.
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for ddl in SQLITE_DDL:
            op.execute(ddl)
        op.execute(SQLITE_REBUILD)  # backfill the runs stored before
    else:  # the index is built over the existing rows
        op.execute(PG_EXTENSION)
        schema = bind.exec_driver_sql(PG_EXTENSION_SCHEMA).scalar_one()
        op.execute(PG_INDEX.format(opclass=f'"{schema}".gin_trgm_ops'))


def downgrade() -> None:
    bind = op.get_bind()
    for ddl in SQLITE_DROP if bind.dialect.name == "sqlite" else PG_DROP:
        op.execute(ddl)
