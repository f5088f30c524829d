"""Tool definitions (versioned contracts): model, loading, hashing, semver, diff.

A tool is a name, a capability tag, a semver version, input and output JSON
Schemas, semantic expectations per output field, a backend, an optional adapter
and a policy. The definition hash (SHA-256 of the RFC 8785 canonical JSON)
pins a version: the same name and version can never be redefined silently.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import rfc8785
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daytwo.exceptions import InputError, SchemaDefinitionError

__all__ = [
    "AdapterSpec",
    "Expectation",
    "HttpAuth",
    "HttpBackendSpec",
    "McpBackendSpec",
    "PythonBackendSpec",
    "ToolDefinition",
    "ToolPolicy",
    "UnitConversion",
    "definition_hash",
    "load_definitions",
    "parse_definitions",
    "parse_semver",
]

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?$")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
_CAPABILITY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def parse_semver(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a semver string, or InputError."""
    match = _SEMVER.match(version)
    if not match:
        raise InputError(
            f"version {version!r} is not a semantic version",
            hint="use MAJOR.MINOR.PATCH, e.g. 1.0.0",
        )
    return int(match[1]), int(match[2]), int(match[3])


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expectation(_Model):
    """What an output field means: type, unit, range, enum, nullability, format."""

    type: Literal["number", "integer", "string", "boolean", "object", "array"] | None = None
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    enum: list[Any] | None = None
    nullable: bool = False
    format: str | None = Field(default=None, description="A regular expression strings match.")

    @field_validator("format")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"format is not a valid regular expression: {exc}") from exc
        return value


class UnitConversion(_Model):
    """value * factor + offset."""

    factor: float = 1.0
    offset: float = 0.0


class AdapterSpec(_Model):
    """A declarative, versioned transform from the backend's response to the contract.

    ``mapping`` gives each contract field a JMESPath over the raw response;
    ``value_maps`` replace values (``LOW -> 0.2``); ``units`` convert numbers;
    ``defaults`` fill missing or null fields. With ``always`` the adapter shapes
    every response; otherwise it is applied only to drifting responses of a tool
    whose drift policy is ``adapt``.
    """

    version: int = Field(default=1, ge=1)
    always: bool = False
    mapping: dict[str, str] = Field(default_factory=dict)
    value_maps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    units: dict[str, UnitConversion] = Field(default_factory=dict)
    defaults: dict[str, Any] = Field(default_factory=dict)


class ToolPolicy(_Model):
    """Per-tool policy: drift action, rate limit, payload limits, injection flagging."""

    drift: Literal["block", "adapt", "flag"] = "flag"
    rate_limit: str | None = Field(default=None, description="e.g. '10/second' (limits syntax).")
    max_input_bytes: int = Field(default=65_536, ge=16)
    max_output_bytes: int = Field(default=1_048_576, ge=16)
    max_depth: int = Field(default=16, ge=1)
    injection: Literal["flag", "block", "off"] = "flag"
    warmup: int = Field(
        default=100, ge=10, description="Responses before the learned profile judges."
    )


class PythonBackendSpec(_Model):
    """A Python callable: ``callable`` is ``module:function`` or a name given to register_python."""

    type: Literal["python"] = "python"
    callable: str


class HttpAuth(_Model):
    """How an HTTP backend authenticates; secrets are names in the credential vault."""

    type: Literal["bearer", "header", "oauth2_client_credentials"]
    secret: str | None = None
    header: str = "Authorization"
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = Field(default=None, description="Vault name of the client secret.")
    scope: str | None = None


class HttpBackendSpec(_Model):
    """An HTTP endpoint; ``params`` says where each argument goes (path/query/header/body)."""

    type: Literal["http"] = "http"
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] = "POST"
    url: str
    params: dict[str, Literal["path", "query", "header", "body"]] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    auth: HttpAuth | None = None


class McpBackendSpec(_Model):
    """A tool on an external MCP server, reached over stdio (command) or Streamable HTTP (url)."""

    type: Literal["mcp"] = "mcp"
    tool: str
    command: list[str] | None = None
    url: str | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    auth: HttpAuth | None = None


BackendSpec = Annotated[
    PythonBackendSpec | HttpBackendSpec | McpBackendSpec, Field(discriminator="type")
]


class ToolDefinition(_Model):
    """A versioned tool contract."""

    name: str
    capability: str
    version: str
    description: str = ""
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    output_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    expectations: dict[str, Expectation] = Field(default_factory=dict)
    backend: BackendSpec
    adapter: AdapterSpec | None = None
    policy: ToolPolicy = Field(default_factory=ToolPolicy)
    cost_usd: float = Field(default=0.0, ge=0)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must start with a letter and use only letters, digits, _ . -")
        return value

    @field_validator("capability")
    @classmethod
    def _capability(cls, value: str) -> str:
        if not _CAPABILITY.match(value):
            raise ValueError("must be dotted lower-case words, e.g. inventory.lookup")
        return value

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _SEMVER.match(value):
            raise ValueError("must be a semantic version MAJOR.MINOR.PATCH")
        return value

    @property
    def major(self) -> int:
        """The major version agents pin."""
        return parse_semver(self.version)[0]

    def check_schemas(self) -> None:
        """Raise SchemaDefinitionError when a schema is not valid JSON Schema."""
        for label, schema in (
            ("input_schema", self.input_schema),
            ("output_schema", self.output_schema),
        ):
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as exc:
                raise SchemaDefinitionError(
                    f"tool {self.name} {self.version}: {label} is not valid JSON Schema: "
                    f"{exc.message}",
                    hint="fix the schema (JSON Schema 2020-12)",
                ) from exc


def definition_hash(definition: ToolDefinition) -> str:
    """SHA-256 of the canonical (RFC 8785) JSON of the definition."""
    data = definition.model_dump(mode="json")
    return hashlib.sha256(rfc8785.dumps(data)).hexdigest()


def parse_definitions(data: Any, *, source: str = "definition") -> list[ToolDefinition]:
    """Validate one definition, a list, or ``{tools: [...]}``; InputError naming the problem."""
    items = data.get("tools") if isinstance(data, dict) and "tools" in data else data
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise InputError(
            f"{source} holds no tool definition",
            hint="write a mapping with name, capability, version, backend (or tools: [...])",
        )
    out: list[ToolDefinition] = []
    for i, item in enumerate(items):
        try:
            definition = ToolDefinition.model_validate(item)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"]) or "definition"
            label = item.get("name", f"#{i + 1}") if isinstance(item, dict) else f"#{i + 1}"
            raise InputError(
                f"{source}: tool {label}: {loc}: {err['msg']}",
                hint="fix that field of the tool definition",
            ) from exc
        definition.check_schemas()
        out.append(definition)
    names = [(d.name, d.version) for d in out]
    if len(set(names)) != len(names):
        raise InputError(
            f"{source} defines the same tool version twice", hint="remove the duplicate"
        )
    return out


def load_definitions(path: Path) -> list[ToolDefinition]:
    """Read tool definitions from a YAML (or JSON) file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(f"file {path} does not exist", hint="check the path") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            f"cannot read {path}: {exc}", hint="check permissions and encoding"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}", hint="fix the YAML syntax") from exc
    return parse_definitions(data, source=str(path))
