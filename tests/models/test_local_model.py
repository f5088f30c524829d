"""The real local model (SmolLM2 on llama.cpp) through the OpenAI protocol."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from daytwo.models import (
    Ladder,
    LocalModelServer,
    LocalModelSettings,
    Message,
    OpenAICompatProvider,
    ProfiledModel,
    ProfileRegistry,
    canary,
    count_messages,
    generate,
    get_model,
    get_tokenizer,
)
from daytwo.models.tokens import GGUFTokenizer
from daytwo.store import Store

pytestmark = pytest.mark.local_model


def test_local_completion_with_usage() -> None:
    with LocalModelServer() as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        provider = OpenAICompatProvider(server.base_url)
        reply = provider.chat(
            [Message(role="user", content="Name a colour.")], max_tokens=16, temperature=0
        )
        provider.close()
    assert reply.text
    assert reply.usage.input_tokens > 0
    assert 0 < reply.usage.output_tokens <= 16
    assert reply.latency_s > 0


def test_cli_models_local_json() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "daytwo",
            "models",
            "local",
            "-p",
            "Say hi",
            "--max-tokens",
            "8",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["text"]
    assert data["usage"]["output_tokens"] > 0


@pytest.fixture(scope="module")
def smol() -> Iterator[ProfiledModel]:
    """The local profile on one llama.cpp engine for the whole module."""
    # One llama.cpp thread: on a shared, oversubscribed CI machine two spinning threads
    # are ~10x slower than one.
    model = get_model(
        "local/smollm2-135m", registry=ProfileRegistry.load(), local=LocalModelSettings(threads=1)
    )
    try:
        yield model
    finally:
        model.close()


def test_gguf_tokenizer_and_template_count_match_llama_cpp(smol: ProfiledModel) -> None:
    import httpx

    root = smol.provider.base_url[: -len("/v1")]  # type: ignore[attr-defined]
    tok = get_tokenizer("gguf:local")
    assert isinstance(tok, GGUFTokenizer)
    for text in ["Hello world, ünïcode   spaces\n\n12345!", "def f(x):\n\treturn x**2  # 🎉"]:
        body = httpx.post(f"{root}/tokenize", json={"content": text}, timeout=60).json()
        assert body["tokens"] == tok.encode(text)
    msgs = [Message(role="system", content="Be brief."), Message(role="user", content="2+2?")]
    reply = smol.chat(msgs, max_tokens=1, temperature=0)
    count = count_messages(msgs, smol.profile)
    assert count.exact
    assert reply.usage.input_tokens == count.tokens


class City(BaseModel):
    name: str
    country: Literal["FR", "DE", "IT"]
    population_millions: float = Field(ge=0, le=50)


def test_grammar_rung_gives_valid_output_first_time(smol: ProfiledModel) -> None:
    result = generate(
        smol,
        [Message(role="user", content="Paris is in France (FR) and has 2.1 million people.")],
        City,
        ladder=Ladder(max_tokens=64),
    )
    assert result.rung == "constrained"
    assert isinstance(result.value, City)
    assert result.value.country in {"FR", "DE", "IT"}


def test_canary_is_stable_at_temperature_zero(smol: ProfiledModel, sqlite_store: Store) -> None:
    prompts = ["Name a colour.", "What is 3+4?"]
    rid = canary.record(sqlite_store, smol, prompts, max_tokens=8, top_k=3)
    report = canary.check(sqlite_store, smol, record_id=rid)
    assert report.fingerprint_changes == {}
    assert report.exact_match_rate == 1.0
    assert report.logprob_divergence < 1e-3
    assert report.passed
    fp = canary.fingerprint_of(smol)
    assert len(fp["weights_sha256"]) == 64
    assert fp["quantization"] == "Q4_1"
