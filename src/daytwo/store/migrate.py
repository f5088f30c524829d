"""Alembic migrations driven from code (no alembic.ini on the user's machine).

Each layer has its own branch of revisions (``branch_labels``); the database
is current when its applied heads equal the heads of the scripts shipped with
the code.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from daytwo.store.engine import WRITE_OPTION

__all__ = ["applied_heads", "code_heads", "known_revisions", "upgrade"]

_SCRIPT_LOCATION = str(Path(__file__).with_name("migrations"))


def _config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _SCRIPT_LOCATION)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def code_heads() -> set[str]:
    """The head revisions shipped with this version of daytwo."""
    return set(ScriptDirectory.from_config(_config()).get_heads())


def applied_heads(engine: Engine) -> set[str]:
    """The head revisions recorded in the database (empty when never migrated)."""
    with engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def _reachable(script: ScriptDirectory, heads: set[str]) -> set[str]:
    return {rev.revision for head in heads for rev in script.iterate_revisions(head, "base")}


def known_revisions() -> set[str]:
    """Every revision shipped with the code."""
    return {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}


def upgrade(engine: Engine) -> list[str]:
    """Apply every pending revision of every branch; return the revisions applied."""
    script = ScriptDirectory.from_config(_config())
    before = _reachable(script, applied_heads(engine))
    # A write transaction (BEGIN IMMEDIATE on SQLite): upgrading a database that has
    # revisions already reads ``alembic_version`` before it writes.
    with engine.execution_options(**{WRITE_OPTION: True}).begin() as conn:
        command.upgrade(_config(conn), "heads")
    return sorted(_reachable(script, applied_heads(engine)) - before)
