"""The real local model (SmolLM2 on llama.cpp) through the OpenAI protocol."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from daytwo.models import LocalModelServer, Message, OpenAICompatProvider

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
