"""Settings: env prefix, TOML file, clear errors, every setting documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from daytwo.exceptions import ConfigError
from daytwo.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults() -> None:
    s = load_settings()
    assert s.data_dir == Path(".daytwo")
    assert s.resolved_database_url == "sqlite:///.daytwo/daytwo.db"


def test_env_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "daytwo.toml").write_text('data_dir = "x"\nlocal_model_threads = 3\n')
    monkeypatch.setenv("DAYTWO_LOCAL_MODEL_THREADS", "4")
    s = load_settings()
    assert s.data_dir == Path("x")
    assert s.local_model_threads == 4  # env beats the file


def test_unknown_env_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTWO_DATABSE_URL", "sqlite://")
    with pytest.raises(ConfigError, match="unknown setting DAYTWO_DATABSE_URL"):
        load_settings()


def test_unknown_toml_setting(tmp_path: Path) -> None:
    (tmp_path / "daytwo.toml").write_text("colour = 1\n")
    with pytest.raises(ConfigError, match="unknown setting 'colour'"):
        load_settings()


def test_invalid_toml(tmp_path: Path) -> None:
    (tmp_path / "daytwo.toml").write_text("data_dir = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_unreadable_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.toml"
    cfg.write_bytes(b"\xff\xfe\x00bad")
    monkeypatch.setenv("DAYTWO_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_settings()
    monkeypatch.setenv("DAYTWO_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings()


def test_invalid_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAYTWO_LOCAL_MODEL_THREADS", "many")
    with pytest.raises(ConfigError, match="local_model_threads"):
        load_settings()


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "settings.md").read_text()
    documented = set(re.findall(r"`DAYTWO_([A-Z_]+)`", doc))
    fields = {name.upper() for name in Settings.model_fields}
    assert fields <= documented, f"undocumented: {sorted(fields - documented)}"


def test_a_dbos_schema_that_is_no_plain_identifier_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DAYTWO_DBOS_SCHEMA", 'dbos"; drop schema public')
    with pytest.raises(ConfigError, match="dbos_schema"):
        load_settings()
