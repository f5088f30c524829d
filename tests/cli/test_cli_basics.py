"""The CLI: version, doctor, db, errors as one red line with exit 2 and no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from daytwo._version import __version__
from daytwo.cli.main import run


def daytwo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess."""
    import os

    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "daytwo", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=300,
    )


def test_version() -> None:
    out = daytwo("--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"daytwo {__version__}"


def test_db_upgrade_and_doctor_json(tmp_path: Path) -> None:
    before = json.loads(daytwo("doctor", "--json").stdout)
    schema = {c["component"]: c for c in before["checks"]}["schema"]
    assert not schema["ok"]
    assert "daytwo db upgrade" in schema["fix"]
    up = daytwo("db", "upgrade", "--json")
    assert up.returncode == 0, up.stderr
    assert "0001_core" in json.loads(up.stdout)["applied"]
    out = daytwo("doctor", "--json")
    report = json.loads(out.stdout)
    components = {c["component"] for c in report["checks"]}
    assert {"settings", "database", "schema", "local_model", "embedder", "tokenizer"} <= components
    assert report["ok"] is True, report
    assert out.returncode == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DAYTWO_NOPE": "1"}, "unknown setting DAYTWO_NOPE"),
        ({"DAYTWO_DATABASE_URL": "mysql://x"}, "not supported"),
        ({"DAYTWO_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/x"}, "cannot use"),
        ({"DAYTWO_CONFIG": "/does/not/exist.toml"}, "does not exist"),
    ],
)
def test_bad_input_is_one_red_line_exit_2(env: dict[str, str], message: str) -> None:
    out = daytwo("db", "upgrade", env=env)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not Path(".daytwo/daytwo.db").exists() or "DATABASE_URL" not in str(env)


def test_missing_model_file(tmp_path: Path) -> None:
    out = daytwo("models", "local", "--prompt", "hi", env={"DAYTWO_LOCAL_MODEL_PATH": "/x.gguf"})
    assert out.returncode == 2
    assert "DAYTWO_LOCAL_MODEL_PATH" in out.stderr
    assert "Traceback" not in out.stderr


def test_debug_shows_traceback() -> None:
    out = daytwo("--debug", "db", "upgrade", env={"DAYTWO_NOPE": "1"})
    assert out.returncode == 2
    assert "Traceback" in out.stderr


def test_outdated_schema_tells_to_upgrade() -> None:
    from daytwo.cli._context import state

    assert run(["db", "current", "--json"]) == 0
    state.reset()
    # A command that needs the schema refuses to run on an un-migrated database.
    from daytwo.exceptions import SchemaOutdated

    with pytest.raises(SchemaOutdated, match="daytwo db upgrade"):
        state.store()


def test_usage_error_exit_2() -> None:
    out = daytwo("db", "nonsense")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr


def test_locked_db_is_exit_2(tmp_path: Path) -> None:
    import sqlite3

    Path(".daytwo").mkdir()
    holder = sqlite3.connect(".daytwo/daytwo.db", isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        out = daytwo("db", "upgrade", env={"DAYTWO_SQLITE_BUSY_TIMEOUT_MS": "100"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert out.returncode == 2
    assert "locked" in out.stderr
    assert "Traceback" not in out.stderr
    check = sqlite3.connect(".daytwo/daytwo.db")
    tables = {r[0] for r in check.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    check.close()
    assert tables == {"other"}  # nothing half-migrated
