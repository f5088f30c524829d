"""Prompt definitions independent of the model, compiled into one model family's request.

An agent's LLM step can hold an abstract :class:`PromptDefinition`: the system
*intent*, the *instructions*, few-shot *examples*, an *output schema* and *context
slots* with priorities (the question, the retrieved passages, the order record...).
:func:`compile_prompt` turns it into the concrete request for a
:class:`~daytwo.models.profiles.Profile`:

- the system text goes in a system message, or is folded into the first user turn
  when the family has no system role (``prompting.system_role: false``);
- few-shot examples become user/assistant turns, or an inline block
  (``prompting.few_shot``);
- the structure is asked for the family's way (``prompting.structured``, else from
  the features): ``json_schema`` (response_format), ``json_mode`` (``json_object``),
  ``grammar`` (a llama.cpp grammar compiled from the schema), ``tool_call`` (one
  forced tool whose parameters are the schema) or ``prompt`` (the shape in the text);
- stop sequences of the definition and of the family, and the profile's sampling
  defaults under the engine's own option names;
- context slots are packed by priority with the *target's* tokenizer and template
  (for a local GGUF model, the chat template stored in the file, rendered): mandatory
  slots always, then the others from the highest priority down, a list slot item by
  item and a text slot word by word when it fits only in part. When the mandatory
  parts do not fit, :class:`~daytwo.exceptions.ContextOverflow` says so with the counts,
  before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daytwo.exceptions import ConfigError, ContextOverflow
from daytwo.models._schemas import render_shape
from daytwo.models.profiles import Profile, StructuredMode
from daytwo.models.tokens import (
    GGUFTokenizer,
    TokenCount,
    count_messages,
    count_text,
    get_tokenizer,
)
from daytwo.models.types import ChatResponse, Message, ToolCall

__all__ = [
    "CompiledPrompt",
    "ContextSlot",
    "Example",
    "PromptDefinition",
    "SlotReport",
    "compile_prompt",
    "definition_from_messages",
    "sampling_options",
    "structured_mode",
]

ANSWER_TOOL = "answer"


class Example(BaseModel):
    """One few-shot example: the request and the answer (text, or the JSON value)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(min_length=1)
    output: Any


class ContextSlot(BaseModel):
    """A named piece of context. ``content`` is text, a list (items kept or dropped one
    by one from the end) or a JSON value; higher ``priority`` is kept first;
    ``required`` slots must fit whole or the compile fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    content: Any = None
    priority: int = 0
    required: bool = False
    label: str | None = None
    """The heading shown above the slot (default: from the name; "" for none)."""

    def heading(self) -> str:
        """The label shown above the slot's text."""
        return self.label or self.name.replace("_", " ").capitalize()


class PromptDefinition(BaseModel):
    """What to ask, independent of any model."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    intent: str | None = Field(default=None, description="The system intent: who answers.")
    instructions: str = ""
    examples: tuple[Example, ...] = ()
    output_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    slots: tuple[ContextSlot, ...] = ()
    stop: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> PromptDefinition:
        names = [s.name for s in self.slots]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"slot name {name!r} is used twice")
        if not self.slots and not self.instructions.strip():
            raise ValueError("a prompt definition needs instructions or at least one slot")
        return self


class SlotReport(BaseModel):
    """What packing did with one slot."""

    name: str
    priority: int
    required: bool
    tokens: int
    """Tokens of the whole slot text under the target tokenizer."""
    kept: Literal["whole", "partial", "dropped", "empty"]
    items: int | None = None
    items_kept: int | None = None


class CompiledPrompt(BaseModel):
    """The concrete request for one profile, with its token counts."""

    profile: str
    chat_template: str
    tokenizer: str
    structured: StructuredMode | None
    system_folded: bool
    few_shot: Literal["turns", "inline"]
    messages: list[Message]
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    """Other request options: stop, top_p, repeat_penalty, grammar, tool_choice..."""
    max_tokens: int
    context_window: int
    prompt_tokens: TokenCount
    rendered: str | None = None
    """The prompt text after the model's own chat template (GGUF models)."""
    slots: list[SlotReport]
    notes: list[str] = Field(default_factory=list)

    def answer_text(self, reply: ChatResponse) -> str | None:
        """The answer's text: the forced tool call's arguments in ``tool_call`` mode."""
        if self.structured == "tool_call" and reply.tool_calls:
            return reply.tool_calls[0].arguments
        return reply.text

    def request(self) -> dict[str, Any]:
        """The request body as an OpenAI-compatible server receives it."""
        body: dict[str, Any] = {"messages": [m.to_openai() for m in self.messages]}
        if self.tools:
            body["tools"] = self.tools
        if self.response_format:
            body["response_format"] = self.response_format
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body["max_tokens"] = self.max_tokens
        body.update(self.extra)
        return body


def _is_llamacpp(profile: Profile) -> bool:
    return profile.provider == "local" or profile.engine.startswith(("llama.cpp", "ollama"))


def structured_mode(profile: Profile) -> StructuredMode:
    """How ``profile`` is asked for a JSON answer (ConfigError when it cannot be)."""
    chosen = profile.prompting.structured
    f = profile.features
    if chosen is None:
        if profile.sampling.grammar and _is_llamacpp(profile):
            return "grammar"
        if f.json_schema:
            return "json_schema"
        return "tool_call" if f.tools else "prompt"
    if chosen == "json_schema" and not f.json_schema:
        raise ConfigError(
            f"profile {profile.name} asks for structured: json_schema but has no json_schema "
            "feature",
            hint="set features.json_schema: true or another prompting.structured",
        )
    if chosen == "tool_call" and not f.tools:
        raise ConfigError(
            f"profile {profile.name} asks for structured: tool_call but has no tools feature",
            hint="set features.tools: true or another prompting.structured",
        )
    if chosen == "grammar" and not _is_llamacpp(profile):
        raise ConfigError(
            f"profile {profile.name} asks for structured: grammar, which only llama.cpp "
            f"engines take (engine {profile.engine!r})",
            hint="use json_schema, tool_call or prompt for this engine",
        )
    return chosen


def sampling_options(profile: Profile) -> tuple[dict[str, Any], list[str]]:
    """The profile's sampling defaults under its engine's option names, and what the
    engine cannot take (said, not sent)."""
    s = profile.sampling
    out: dict[str, Any] = {}
    notes: list[str] = []
    if s.temperature is not None:
        out["temperature"] = s.temperature
    if s.top_p is not None:
        out["top_p"] = s.top_p
    llama, vllm = _is_llamacpp(profile), profile.engine.startswith("vllm")
    if s.top_k is not None:
        if llama or vllm or profile.provider == "anthropic":
            out["top_k"] = s.top_k
        else:
            notes.append(f"top_k={s.top_k} not sent: engine {profile.engine} has no top_k")
    if s.repeat_penalty is not None:
        if llama:
            out["repeat_penalty"] = s.repeat_penalty
        elif vllm:
            out["repetition_penalty"] = s.repeat_penalty
        else:
            notes.append(
                f"repeat_penalty={s.repeat_penalty} not sent: engine {profile.engine} has none"
            )
    return out, notes


def _grammar(schema: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp request fields constraining the answer to ``schema``."""
    try:
        import xllamacpp
    except ModuleNotFoundError:
        # A remote llama.cpp server compiles a JSON schema into its grammar itself.
        return {"json_schema": schema}
    return {"grammar": str(xllamacpp.json_schema_to_grammar(json.dumps(schema)))}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _empty(content: Any) -> bool:
    return content is None or content == "" or content == [] or content == {}


def _slot_text(slot: ContextSlot, content: Any) -> str:
    if isinstance(content, (list, tuple)):
        body = "\n".join(f"[{i}] {_text(item)}" for i, item in enumerate(content, start=1))
    else:
        body = _text(content)
    return f"{slot.heading()}:\n{body}" if slot.label != "" else body


class _Builder:
    """Builds the messages for a choice of slot contents; counts them on the target."""

    def __init__(self, definition: PromptDefinition, profile: Profile, mode: StructuredMode | None):
        self.d = definition
        self.p = profile
        self.mode = mode
        self.tools: list[dict[str, Any]] | None = None
        schema = definition.output_schema
        instruction = ""
        if schema is not None and mode == "tool_call":
            self.tools = [
                {
                    "type": "function",
                    "function": {
                        "name": ANSWER_TOOL,
                        "description": "Give the answer.",
                        "parameters": schema,
                    },
                }
            ]
            instruction = f"Answer by calling the tool `{ANSWER_TOOL}` with your answer."
        elif schema is not None:
            instruction = (
                "Answer with JSON only (no prose, no code fences), filling in this shape:\n"
                + render_shape(schema)
            )
        self.instruction = instruction
        self.system = "\n\n".join(
            part.strip()
            for part in (definition.intent or "", definition.instructions)
            if part and part.strip()
        )
        if definition.examples and profile.prompting.few_shot == "inline":
            shots = "\n\n".join(
                f"Input: {ex.input}\nOutput: {_text(ex.output)}" for ex in definition.examples
            )
            self.system = f"{self.system}\n\nExamples:\n\n{shots}".strip()

    def _example_turns(self) -> list[Message]:
        if self.p.prompting.few_shot != "turns":
            return []
        turns: list[Message] = []
        for i, ex in enumerate(self.d.examples, start=1):
            turns.append(Message(role="user", content=ex.input))
            if self.mode == "tool_call" and self.d.output_schema is not None:
                call = ToolCall(id=f"example-{i}", name=ANSWER_TOOL, arguments=_text(ex.output))
                turns.append(Message(role="assistant", content=None, tool_calls=[call]))
                turns.append(Message(role="tool", tool_call_id=call.id, content="ok"))
            else:
                turns.append(Message(role="assistant", content=_text(ex.output)))
        return turns

    def messages(self, chosen: dict[str, Any]) -> list[Message]:
        parts = [
            _slot_text(s, chosen[s.name])
            for s in self.d.slots
            if s.name in chosen and not _empty(chosen[s.name])
        ]
        if self.instruction:
            parts.append(self.instruction)
        request = "\n\n".join(parts) or self.d.instructions
        msgs: list[Message] = [*self._example_turns(), Message(role="user", content=request)]
        if self.system:
            if self.p.prompting.system_role:
                msgs.insert(0, Message(role="system", content=self.system))
            else:
                first = msgs[0]
                msgs[0] = first.model_copy(
                    update={"content": f"{self.system}\n\n{first.content or ''}"}
                )
        return msgs

    def count(self, chosen: dict[str, Any]) -> TokenCount:
        return count_messages(self.messages(chosen), self.p, tools=self.tools)


def _largest(n: int, fits: Callable[[int], bool]) -> int:
    """The largest k in 0..n with fits(k) (fits is monotone, fits(0) assumed)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fits_with(
    fits: Callable[[dict[str, Any]], bool], chosen: dict[str, Any], name: str
) -> Callable[[Any], bool]:
    return lambda part: fits({**chosen, name: part})


def _pack_partial(content: Any, fits: Callable[[Any], bool]) -> tuple[int, Any]:
    """The largest leading part of ``content`` that fits: (items or words kept, the part)."""
    if isinstance(content, (list, tuple)):
        items = list(content)
        k = _largest(len(items) - 1, lambda n: fits(items[:n]))
        return k, items[:k]
    words = _text(content).split(" ")
    k = _largest(len(words) - 1, lambda n: fits(" ".join(words[:n]) + " …"))
    return k, " ".join(words[:k]) + " …"


def _overflow(
    profile: Profile,
    builder: _Builder,
    required: dict[str, Any],
    base: TokenCount,
    reserve: int,
) -> ContextOverflow:
    fixed = builder.count({}).tokens
    sizes = {
        s.name: count_text(_slot_text(s, required[s.name]), profile.tokenizer).tokens
        for s in builder.d.slots
        if s.name in required and not _empty(required[s.name])
    }
    listed = ", ".join(f"{k} {v}" for k, v in sizes.items()) or "none"
    return ContextOverflow(
        f"the prompt's mandatory parts need {base.tokens} tokens ({base.label}, "
        f"{base.tokenizer}: instructions, examples and template {fixed}; required slots "
        f"{listed}) + {reserve} for the answer, over the {profile.context_window}-token "
        f"window of profile {profile.name}",
        hint="shorten the required slots, make some optional (required: false), fewer "
        "examples, a lower max_tokens, or a profile with a larger window",
        prompt_tokens=base.tokens,
        fixed_tokens=fixed,
        slot_tokens=sizes,
        reserved_output=reserve,
        context_window=profile.context_window,
        profile=profile.name,
    )


def compile_prompt(
    definition: PromptDefinition, profile: Profile, *, max_tokens: int | None = None
) -> CompiledPrompt:
    """The concrete request of ``definition`` for ``profile`` (see the module docstring).

    ``max_tokens`` (default: the profile's max output, at most an eighth of the window)
    is kept free for the answer while packing.
    """
    reserve = max_tokens or min(profile.max_output_tokens, profile.context_window // 8)
    mode = structured_mode(profile) if definition.output_schema is not None else None
    builder = _Builder(definition, profile, mode)
    limit = profile.context_window - reserve

    def fits(chosen: dict[str, Any]) -> bool:
        return builder.count(chosen).tokens <= limit

    required = {s.name: s.content for s in definition.slots if s.required}
    base = builder.count(required)
    if base.tokens > limit:
        raise _overflow(profile, builder, required, base, reserve)
    chosen = dict(required)
    reports: dict[str, SlotReport] = {}
    order = sorted(
        enumerate(definition.slots),
        key=lambda pair: (not pair[1].required, -pair[1].priority, pair[0]),
    )
    for _, slot in order:
        content = slot.content
        whole = (
            0
            if _empty(content)
            else count_text(_slot_text(slot, content), profile.tokenizer).tokens
        )
        n_items = len(content) if isinstance(content, (list, tuple)) else None
        report = SlotReport(
            name=slot.name,
            priority=slot.priority,
            required=slot.required,
            tokens=whole,
            kept="empty" if _empty(content) else "whole",
            items=n_items,
            items_kept=n_items,
        )
        reports[slot.name] = report
        if slot.required or _empty(content):
            continue
        if fits({**chosen, slot.name: content}):
            chosen[slot.name] = content
            continue
        k, partial = _pack_partial(content, _fits_with(fits, chosen, slot.name))
        if isinstance(content, (list, tuple)):
            report.items_kept = k
        if k > 0:
            chosen[slot.name] = partial
            report.kept = "partial"
        else:
            report.kept = "dropped"
            report.items_kept = 0 if n_items is not None else None
    messages = builder.messages(chosen)
    count = count_messages(messages, profile, tools=builder.tools)
    options, notes = sampling_options(profile)
    temperature = options.pop("temperature", None)
    extra: dict[str, Any] = dict(options)
    stop = list(dict.fromkeys([*definition.stop, *profile.prompting.stop]))
    if stop:
        extra["stop"] = stop
    response_format = None
    schema = definition.output_schema
    if schema is not None and mode == "json_schema":
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": str(schema.get("title") or "answer")[:64], "schema": schema},
        }
    elif schema is not None and mode == "json_mode":
        response_format = {"type": "json_object"}
    elif schema is not None and mode == "grammar":
        extra.update(_grammar(schema))
    elif schema is not None and mode == "tool_call":
        extra["tool_choice"] = {"type": "function", "function": {"name": ANSWER_TOOL}}
    rendered = None
    if profile.chat_template == "gguf":
        tok = get_tokenizer(profile.tokenizer)
        if isinstance(tok, GGUFTokenizer):
            rendered = tok.render([m.to_openai() | {"content": m.content or ""} for m in messages])
    return CompiledPrompt(
        profile=profile.name,
        chat_template=profile.chat_template,
        tokenizer=count.tokenizer,
        structured=mode,
        system_folded=bool(builder.system) and not profile.prompting.system_role,
        few_shot=profile.prompting.few_shot,
        messages=messages,
        tools=builder.tools,
        response_format=response_format,
        temperature=temperature,
        extra=extra,
        max_tokens=reserve,
        context_window=profile.context_window,
        prompt_tokens=count,
        rendered=rendered,
        slots=[reports[s.name] for s in definition.slots],
        notes=notes,
    )


def definition_from_messages(
    messages: Sequence[Message], schema: dict[str, Any] | None = None
) -> PromptDefinition:
    """A definition holding plain chat messages: system text as the intent, the rest as
    one required slot per turn (for prompt sets written as messages)."""
    system = "\n\n".join(m.content or "" for m in messages if m.role == "system")
    rest = [m for m in messages if m.role != "system"]
    slots = tuple(
        ContextSlot(name=f"turn_{i}", content=m.content or "", required=True, label=m.role.title())
        for i, m in enumerate(rest, start=1)
    )
    if len(slots) == 1:
        slots = (
            ContextSlot(name="request", content=rest[0].content or "", required=True, label=""),
        )
    return PromptDefinition(intent=system or None, slots=slots, output_schema=schema)
