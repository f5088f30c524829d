"""The system of record on SQLite and PostgreSQL: migrations, schema checks, errors."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from daytwo.exceptions import ConfigError, DatabaseLocked, DatabaseUnavailable, SchemaOutdated
from daytwo.store import Base, Store, run_text, utcnow
from daytwo.store import tables as _tables  # noqa: F401
from daytwo.store.migrate import code_heads
from daytwo.store.tables.core import InstanceInfo


def test_upgrade_is_idempotent_and_reaches_code_heads(db_url: str) -> None:
    store = Store(db_url)
    with pytest.raises(SchemaOutdated, match="no daytwo schema"):
        store.check_schema()
    applied = store.upgrade()
    assert "0001_core" in applied
    assert store.upgrade() == []
    applied_heads, heads = store.schema_status()
    assert applied_heads == heads == code_heads()
    store.check_schema()
    store.dispose()


def test_migrations_match_the_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # The runs' text index is not a model: an FTS5 virtual table (and its shadow tables)
    # on SQLite, a pg_trgm expression index on PostgreSQL.
    diff = [
        d
        for d in diff
        if not (d[0] == "remove_table" and d[1].name.startswith(run_text.SQLITE_TABLE))
        and not (d[0] == "remove_index" and d[1].name == run_text.PG_INDEX)
    ]
    assert diff == []


def test_session_commits_and_rolls_back(store: Store) -> None:
    with store.session() as s:
        s.add(InstanceInfo(key="a", value="1"))
    with pytest.raises(RuntimeError), store.session() as s:
        s.add(InstanceInfo(key="b", value="2"))
        s.flush()
        raise RuntimeError("boom")
    with store.session() as s:
        keys = set(s.scalars(sa.select(InstanceInfo.key)))
        row = s.get(InstanceInfo, "a")
    assert keys == {"a"}
    assert row is not None
    assert row.updated_at.tzinfo is not None
    assert row.updated_at <= utcnow()


def test_sqlite_pragmas(sqlite_store: Store) -> None:
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_older_schema_is_refused(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.upgrade()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM alembic_version")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('0001_core')")
    if code_heads() == {"0001_core"}:
        store.check_schema()  # nothing newer exists yet
    else:
        with pytest.raises(SchemaOutdated, match="daytwo db upgrade"):
            store.check_schema()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num='9999_future'")
    with pytest.raises(SchemaOutdated, match="newer"):
        store.check_schema()


def test_locked_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    store = Store(f"sqlite:///{path}", busy_timeout_ms=100)
    store.upgrade()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseLocked, match="locked"), store.session() as s:
            s.add(InstanceInfo(key="x", value="y"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with store.session() as s:
        assert s.get(InstanceInfo, "x") is None
    store.dispose()


def test_concurrent_writers_wait_instead_of_failing(sqlite_store: Store) -> None:
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for j in range(20):
                with sqlite_store.session() as s:
                    s.add(InstanceInfo(key=f"{i}-{j}", value="v"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sqlite_store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(InstanceInfo)) == 80


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("not a url", ConfigError),
        ("mysql://root@127.0.0.1/test", ConfigError),
        ("postgresql+psycopg://nobody@127.0.0.1:1/none", DatabaseUnavailable),
        ("sqlite:////proc/forbidden/daytwo.db", DatabaseUnavailable),
    ],
)
def test_wrong_database_url(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        store = Store(url)
        store.ping()


def test_the_fast_schema_check_reads_the_heads_alembic_reads(db_url: str) -> None:
    """The CLI's check (no Alembic import) must agree with Alembic on both sides."""
    from daytwo.store.heads import script_heads, stored_heads
    from daytwo.store.migrate import applied_heads

    assert set(script_heads()) == code_heads()
    store = Store(db_url)
    try:
        assert stored_heads(store.engine) is None  # no alembic_version table yet
        store.upgrade()
        assert stored_heads(store.engine) == applied_heads(store.engine) == code_heads()
    finally:
        store.dispose()


def test_the_trigram_index_finds_pg_trgm_in_a_schema_off_the_search_path(pg_url: str) -> None:
    """pg_trgm installed by a DBA in ``extensions`` (as managed PostgreSQL services do),
    the store in schema ``app``: the migration still builds the explorer's text index."""
    server = pg_url.split("?", 1)[0]  # the fixture's database; this test needs its own
    name = f"t_ext_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        setup = sa.create_engine(base)
        with setup.begin() as conn:
            conn.execute(sa.text("CREATE SCHEMA extensions"))
            conn.execute(sa.text("CREATE EXTENSION pg_trgm SCHEMA extensions"))
            conn.execute(sa.text("CREATE SCHEMA app"))
        setup.dispose()
        store = Store(f"{base}?options=-csearch_path%3Dapp")
        store.upgrade()
        with store.engine.connect() as conn:
            indexdef = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                {"n": run_text.PG_INDEX},
            ).scalar_one()
        store.dispose()
        assert "extensions.gin_trgm_ops" in indexdef
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
