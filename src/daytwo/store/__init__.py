"""System of record: SQLAlchemy 2 tables, Alembic migrations, SQLite (WAL) or PostgreSQL."""

from daytwo.store.base import Base, new_id, utcnow
from daytwo.store.store import Store, WriterHold

__all__ = ["Base", "Store", "WriterHold", "new_id", "utcnow"]
