"""The system of record: one engine, transactional sessions, schema checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daytwo.exceptions import SchemaOutdated
from daytwo.store import migrate
from daytwo.store.engine import is_sqlite, make_engine, map_db_error

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = ["Store"]


class Store:
    """Owns the engine; hands out sessions that commit on success and roll back on error."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, busy_timeout_ms=busy_timeout_ms)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        """The store the settings point at."""
        return cls(settings.resolved_database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    @property
    def is_sqlite(self) -> bool:
        """True for the embedded SQLite store."""
        return is_sqlite(self.engine)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def ping(self) -> None:
        """Connect once, or raise DatabaseUnavailable/DatabaseLocked."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def upgrade(self) -> list[str]:
        """Apply pending migrations; return the revisions applied (empty when current)."""
        try:
            return migrate.upgrade(self.engine)
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def schema_status(self) -> tuple[set[str], set[str]]:
        """(applied heads, code heads)."""
        try:
            return migrate.applied_heads(self.engine), migrate.code_heads()
        except OperationalError as exc:
            raise map_db_error(exc, self.url) from exc

    def check_schema(self) -> None:
        """Raise SchemaOutdated unless the database is at the code's heads."""
        applied, heads = self.schema_status()
        if applied == heads:
            return
        if not applied:
            raise SchemaOutdated(
                "the database has no daytwo schema yet", hint="run `daytwo db upgrade`"
            )
        known = migrate.known_revisions()
        if applied - known:
            raise SchemaOutdated(
                f"the database schema ({', '.join(sorted(applied - known))}) is newer than "
                "this version of daytwo",
                hint="upgrade daytwo (pip install -U daytwo)",
            )
        raise SchemaOutdated(
            "the database schema is older than the code", hint="run `daytwo db upgrade`"
        )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
