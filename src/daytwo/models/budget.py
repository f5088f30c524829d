"""Budget check of a chat request against its target profile, with overflow strategies.

Strategies: ``error`` (raise :class:`ContextOverflow` with the counts),
``truncate_oldest`` (drop the oldest non-system history), ``drop_chunks`` (drop
the lowest-ranked retrieved-context messages, those with ``Message.rank`` set) and
``summarise`` (replace the oldest history with a summary written by a model).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from daytwo.exceptions import ContextOverflow
from daytwo.models.profiles import Profile
from daytwo.models.tokens import TokenCount, count_messages
from daytwo.models.types import Message

if TYPE_CHECKING:
    from daytwo.models.base import ChatModel

__all__ = ["BudgetReport", "BudgetStrategy", "fit_to_budget", "output_reserve"]

BudgetStrategy = Literal["error", "truncate_oldest", "drop_chunks", "summarise"]
STRATEGIES: tuple[BudgetStrategy, ...] = ("error", "truncate_oldest", "drop_chunks", "summarise")


class BudgetReport(BaseModel):
    """What the budget check counted and did."""

    prompt: TokenCount
    reserved_output: int
    limit: int
    strategy: BudgetStrategy
    dropped_messages: int = 0
    summarised_messages: int = 0
    original_tokens: int

    @property
    def fits(self) -> bool:
        """True when prompt plus reserved output fit the context window."""
        return self.prompt.tokens + self.reserved_output <= self.limit


def output_reserve(profile: Profile, max_tokens: int | None) -> int:
    """Tokens kept free for the answer: ``max_tokens``, else a slice of the window."""
    if max_tokens is not None:
        return max_tokens
    return min(profile.max_output_tokens, profile.context_window // 8)


def _overflow(profile: Profile, count: TokenCount, reserve: int, detail: str) -> ContextOverflow:
    return ContextOverflow(
        f"request needs {count.tokens} prompt tokens ({count.label}, {count.tokenizer}) + "
        f"{reserve} for the answer, over the {profile.context_window}-token window of "
        f"profile {profile.name}{detail}",
        hint="shorten the input, lower max_tokens, or use a budget strategy "
        "(truncate_oldest, drop_chunks, summarise)",
        prompt_tokens=count.tokens,
        reserved_output=reserve,
        context_window=profile.context_window,
        profile=profile.name,
    )


def _droppable_history(messages: list[Message]) -> int | None:
    """Index of the oldest message that truncation may drop (never system, never the last)."""
    for i, m in enumerate(messages[:-1]):
        if m.role != "system" and m.rank is None:
            return i
    return None


def _drop_at(messages: list[Message], index: int) -> int:
    """Drop ``messages[index]`` and the tool results answering it; return how many went."""
    dropped = messages.pop(index)
    count = 1
    if dropped.tool_calls:
        ids = {c.id for c in dropped.tool_calls}
        while index < len(messages) - 1 and messages[index].tool_call_id in ids:
            messages.pop(index)
            count += 1
    return count


def fit_to_budget(
    messages: Sequence[Message],
    profile: Profile,
    *,
    tools: Sequence[dict[str, Any]] | None = None,
    max_tokens: int | None = None,
    strategy: BudgetStrategy = "error",
    summariser: ChatModel | None = None,
) -> tuple[list[Message], BudgetReport]:
    """Messages that fit ``profile`` (maybe shortened by ``strategy``) and the report."""
    reserve = output_reserve(profile, max_tokens)
    limit = profile.context_window
    msgs = list(messages)
    count = count_messages(msgs, profile, tools=tools)
    report = BudgetReport(
        prompt=count,
        reserved_output=reserve,
        limit=limit,
        strategy=strategy,
        original_tokens=count.tokens,
    )
    if report.fits:
        return msgs, report
    if reserve >= limit:
        raise _overflow(profile, count, reserve, ": max_tokens alone fills the window")
    if strategy == "error":
        raise _overflow(profile, count, reserve, "")
    if strategy == "drop_chunks":
        ranked = sorted(
            (i for i, m in enumerate(msgs) if m.rank is not None), key=lambda i: msgs[i].rank or 0.0
        )
        drop: set[int] = set()
        for i in ranked:
            drop.add(i)
            trial = [m for j, m in enumerate(msgs) if j not in drop]
            count = count_messages(trial, profile, tools=tools)
            if count.tokens + reserve <= limit:
                break
        msgs = [m for j, m in enumerate(msgs) if j not in drop]
        report.dropped_messages = len(drop)
    elif strategy == "truncate_oldest":
        while count.tokens + reserve > limit:
            index = _droppable_history(msgs)
            if index is None:
                break
            report.dropped_messages += _drop_at(msgs, index)
            count = count_messages(msgs, profile, tools=tools)
    elif strategy == "summarise":
        if summariser is None:
            raise _overflow(
                profile, count, reserve, " (strategy summarise needs a summariser model)"
            )
        msgs, count, n = _summarise(msgs, profile, tools, reserve, summariser)
        report.summarised_messages = n
    report.prompt = count
    if not report.fits:
        raise _overflow(profile, count, reserve, f" even after strategy {strategy}")
    return msgs, report


def _summarise(
    msgs: list[Message],
    profile: Profile,
    tools: Sequence[dict[str, Any]] | None,
    reserve: int,
    summariser: ChatModel,
) -> tuple[list[Message], TokenCount, int]:
    """Replace the oldest history (all but the last message) with one summary message."""
    head = [m for m in msgs if m.role == "system" and m.rank is None]
    history = [m for m in msgs[:-1] if not (m.role == "system" and m.rank is None)]
    last = msgs[-1]
    if not history:
        return msgs, count_messages(msgs, profile, tools=tools), 0
    lines = [f"{m.role}: {m.content or ''}" for m in history]
    budget_words = max(20, (profile.context_window - reserve) // 8)
    summary_tokens = min(512, budget_words * 2)

    def request(lines: list[str]) -> list[Message]:
        return [
            Message(
                role="system",
                content=f"Summarise the conversation below in at most {budget_words} words. "
                "Keep names, numbers and decisions.",
            ),
            Message(role="user", content="\n".join(lines)),
        ]

    # The transcript must fit the summariser's own window: drop its oldest lines if not.
    window = summariser.profile.context_window - summary_tokens
    while len(lines) > 1 and count_messages(request(lines), summariser.profile).tokens > window:
        lines.pop(0)
    reply = summariser.chat(request(lines), temperature=0.0, max_tokens=summary_tokens)
    summary = Message(
        role="system", content=f"Summary of the earlier conversation: {reply.text or ''}"
    )
    out = [*head, summary, last]
    return out, count_messages(out, profile, tools=tools), len(history)
