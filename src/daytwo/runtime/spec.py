"""Agent specs as pydantic models: steps, budgets, SLO, retry policies, and DAG checks.

An agent is a DAG of steps. Each step names the steps it waits for in ``after``;
references to other steps' outputs inside templates (``{{ steps.docs }}``) add
implicit edges. :meth:`AgentSpec.plan` returns the steps in a deterministic
topological order, or raises :class:`SpecError` naming a cycle or an unknown step.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from daytwo.exceptions import SpecError
from daytwo.models.prompts import PromptDefinition

__all__ = [
    "AgentSpec",
    "ApprovalStep",
    "BranchStep",
    "Budgets",
    "LLMStep",
    "MapStep",
    "PlanStep",
    "RetrievalStep",
    "RetryPolicy",
    "Slo",
    "SpecError",
    "Step",
    "ToolStep",
]

_ID = r"^[A-Za-z_][A-Za-z0-9_]*$"
_STEP_REF = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_]*)")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RetryPolicy(_Model):
    """How a failing step is retried: exponential backoff with jitter; 429 honours Retry-After."""

    attempts: int = Field(default=3, ge=1, le=20, description="Tries in total, first included.")
    backoff_s: float = Field(default=0.2, ge=0, description="First wait between tries.")
    multiplier: float = Field(default=2.0, ge=1.0, description="Growth of the wait per try.")
    max_backoff_s: float = Field(default=10.0, ge=0, description="Cap of one wait.")
    jitter_s: float = Field(default=0.1, ge=0, description="Random extra wait, 0..jitter_s.")
    retry_on: tuple[str, ...] = Field(
        default=("TransportError", "BackendError", "TimeoutError", "ConnectionError"),
        description="Names of retryable exception classes (subclasses count).",
    )


class Budgets(_Model):
    """Hard limits of one run; going past one fails the run with ``BudgetExceeded``."""

    max_steps: int = Field(default=50, ge=1)
    max_tokens: int = Field(default=100_000, ge=1)
    max_cost_usd: float = Field(default=1.0, ge=0)
    max_wall_s: float = Field(default=300.0, gt=0)


class Slo(_Model):
    """Latency target of one tool call chosen by capability (and of the run)."""

    latency_ms: float = Field(default=2000.0, gt=0)
    max_error_rate: float = Field(
        default=0.5, ge=0, le=1, description="Circuit-break a tool whose error rate is above this."
    )


class _StepBase(_Model):
    id: str = Field(pattern=_ID)
    after: tuple[str, ...] = ()
    retry: RetryPolicy | None = None
    fallback: str | None = Field(
        default=None, description="Degraded step to run instead when this one fails for good."
    )

    def refs(self) -> set[str]:
        """Steps this one depends on: ``after`` plus ``steps.X`` references in templates."""
        found = set(self.after)
        for value in self.templates():
            found.update(_STEP_REF.findall(value))
        return found

    def templates(self) -> list[str]:
        """Every template string of the step (where ``steps.X`` may appear)."""
        out: list[str] = []
        _collect_strings(self.model_dump(exclude={"id", "after", "fallback", "retry"}), out)
        return out


class RetrievalStep(_StepBase):
    """Search a knowledge collection with the run principal's ACL."""

    kind: Literal["retrieve"]
    collection: str
    query: str
    k: int = Field(default=4, ge=1, le=100)
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"


class LLMStep(_StepBase):
    """Ask the model; with ``schema`` the answer must be JSON valid against it.

    ``prompt`` is a template string sent as the user message, or an abstract prompt
    definition (intent, instructions, examples, context slots with priorities; see
    :class:`daytwo.models.PromptDefinition`) that is compiled for the model the step
    runs on (:func:`daytwo.models.compile_prompt`).
    """

    kind: Literal["llm"]
    prompt: str | PromptDefinition
    system: str | None = None
    output_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    max_tokens: int = Field(default=256, ge=1)
    model: str | None = Field(
        default=None, max_length=128, description="Model profile of this step (else the agent's)."
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ToolStep(_StepBase):
    """Call a tool by name, or choose one of a capability's tools from live telemetry."""

    kind: Literal["tool"]
    tool: str | None = None
    capability: str | None = None
    arguments: dict[str, Any] = Field(default_factory=dict)
    prefer: tuple[str, ...] = Field(
        default=(), description="Preference order among the capability's tools."
    )

    @model_validator(mode="after")
    def _one_target(self) -> ToolStep:
        if (self.tool is None) == (self.capability is None):
            raise ValueError("a tool step needs exactly one of 'tool' or 'capability'")
        return self


class BranchStep(_StepBase):
    """Evaluate ``when`` (JMESPath over input/steps); run ``then`` or ``otherwise``."""

    kind: Literal["branch"]
    when: str
    then: tuple[str, ...] = ()
    otherwise: tuple[str, ...] = Field(default=(), alias="else")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MapStep(_StepBase):
    """Run a tool for every item of a list, concurrently, and join the results."""

    kind: Literal["map"]
    items: str = Field(description="JMESPath giving the list, e.g. input.orders.")
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    join: Literal["all", "quorum", "keep-successes"] = "all"
    quorum: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=8, ge=1, le=64)

    @model_validator(mode="after")
    def _quorum(self) -> MapStep:
        if self.join == "quorum" and self.quorum is None:
            raise ValueError("join 'quorum' needs 'quorum: N'")
        return self


class ApprovalStep(_StepBase):
    """Pause until a human approves (``daytwo runs approve``); rejection fails the run."""

    kind: Literal["approval"]
    prompt: str = "approve?"
    timeout_s: float = Field(default=86_400.0, gt=0)


class PlanStep(_StepBase):
    """Planner mode: the LLM proposes tool calls, validated against catalog and budgets."""

    kind: Literal["plan"]
    goal: str
    tools: tuple[str, ...] = Field(default=(), description="Allowed tools (default: all).")
    max_calls: int = Field(default=4, ge=1, le=20)


Step = Annotated[
    RetrievalStep | LLMStep | ToolStep | BranchStep | MapStep | ApprovalStep | PlanStep,
    Field(discriminator="kind"),
]


class AgentSpec(_Model):
    """One agent: model profile, prompts, steps, budgets, SLO and the default retry policy."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=128)
    description: str = ""
    model: str | None = Field(
        default=None,
        max_length=128,
        description="Model profile the agent's llm and plan steps use (a step's own "
        "`model` wins); unset: the server's DAYTWO_DEFAULT_MODEL.",
    )
    prompts: dict[str, str] = Field(default_factory=dict)
    budgets: Budgets = Field(default_factory=Budgets)
    slo: Slo = Field(default_factory=Slo)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    planner: bool = Field(default=False, description="Let the LLM re-plan failed tool steps.")
    steps: tuple[Step, ...] = Field(min_length=1)
    degraded: tuple[Step, ...] = Field(
        default=(), description="Steps that only run as a fallback of a failed step."
    )
    output: str | None = Field(default=None, description="Step whose output is the run's answer.")

    @model_validator(mode="after")
    def _check_graph(self) -> AgentSpec:
        self.plan()
        return self

    def step(self, step_id: str) -> Any:
        """The step (main or degraded) with this id."""
        for s in (*self.steps, *self.degraded):
            if s.id == step_id:
                return s
        raise SpecError(f"agent {self.name!r} has no step {step_id!r}")

    def dependencies(self) -> dict[str, set[str]]:
        """Step id → ids it waits for (branch targets wait for their branch)."""
        deps = {s.id: s.refs() for s in self.steps}
        for s in self.steps:
            if isinstance(s, BranchStep):
                for target in (*s.then, *s.otherwise):
                    if target in deps:
                        deps[target].add(s.id)
        return deps

    def plan(self) -> list[str]:
        """Main step ids in topological order (spec order breaks ties)."""
        ids = [s.id for s in self.steps]
        degraded_ids = [s.id for s in self.degraded]
        seen: set[str] = set()
        for sid in (*ids, *degraded_ids):
            if sid in seen:
                raise SpecError(
                    f"agent {self.name!r}: step id {sid!r} is used twice",
                    hint="give every step a unique id",
                )
            seen.add(sid)
        deps = self.dependencies()
        known = set(ids)
        for sid, wanted in deps.items():
            for ref in sorted(wanted - known):
                raise SpecError(
                    f"agent {self.name!r}: step {sid!r} refers to unknown step {ref!r}",
                    hint=f"known steps: {', '.join(ids)}",
                )
        for s in (*self.steps, *self.degraded):
            if s.fallback is not None and s.fallback not in degraded_ids:
                raise SpecError(
                    f"agent {self.name!r}: step {s.id!r} falls back to {s.fallback!r}, "
                    "which is not a degraded step",
                    hint="define it under 'degraded:'",
                )
            if isinstance(s, BranchStep):
                for target in (*s.then, *s.otherwise):
                    if target not in known:
                        raise SpecError(
                            f"agent {self.name!r}: branch {s.id!r} names unknown step {target!r}",
                            hint=f"known steps: {', '.join(ids)}",
                        )
        for s in self.degraded:
            for ref in sorted(s.refs() - known):
                raise SpecError(
                    f"agent {self.name!r}: degraded step {s.id!r} refers to unknown step {ref!r}",
                    hint=f"known steps: {', '.join(ids)}",
                )
        if self.output is not None and self.output not in known:
            raise SpecError(
                f"agent {self.name!r}: output names unknown step {self.output!r}",
                hint=f"known steps: {', '.join(ids)}",
            )
        order: list[str] = []
        done: set[str] = set()
        while len(order) < len(ids):
            ready = [i for i in ids if i not in done and deps[i] <= done]
            if not ready:
                cycle = _find_cycle({i: deps[i] - done for i in ids if i not in done})
                raise SpecError(
                    f"agent {self.name!r}: the steps form a cycle: {' -> '.join(cycle)}",
                    hint="remove one of these dependencies (after: or steps.X references)",
                )
            order.append(ready[0])
            done.add(ready[0])
        return order

    def waves(self) -> list[list[str]]:
        """:meth:`_waves`, computed once per spec (a spec never changes)."""
        return [list(w) for w in self.run_order()[1]]

    def run_order(self) -> tuple[dict[str, frozenset[str]], tuple[tuple[str, ...], ...]]:
        """What the engine walks, computed once per spec and shared by its runs
        (read-only): :meth:`dependencies` and :meth:`waves`."""
        cached = self.__dict__.get("_run_order")
        if cached is None or cached[0] is not self.steps:  # not for a changed copy
            deps = {k: frozenset(v) for k, v in self.dependencies().items()}
            cached = (self.steps, deps, tuple(tuple(w) for w in self._waves()))
            # Beside the fields of a frozen model (not one of them: not dumped, not compared).
            self.__dict__["_run_order"] = cached
        return cached[1], cached[2]

    def _waves(self) -> list[list[str]]:
        """:meth:`plan` cut into waves: runs of consecutive steps with no edge between
        them (LangGraph's supersteps), which the engine checkpoints together.

        No path can join two steps of a wave either: a path between two of them runs
        through steps planned between them, all in the wave, the first edge among them.
        Branch, approval and plan steps are waves of their own (a branch decides what
        runs next; the others wait or grow new steps).
        """
        deps = self.dependencies()
        apart = (BranchStep, ApprovalStep, PlanStep)
        waves: list[list[str]] = []
        for sid in self.plan():
            last = waves[-1] if waves else []
            if (
                last
                and not isinstance(self.step(sid), apart)
                and not isinstance(self.step(last[0]), apart)
                and not deps[sid] & set(last)
            ):
                last.append(sid)
            else:
                waves.append([sid])
        return waves


def _find_cycle(deps: dict[str, set[str]]) -> list[str]:
    start = sorted(deps)[0]
    path: list[str] = []
    node = start
    while node not in path:
        path.append(node)
        node = sorted(deps[node])[0]
    return [*path[path.index(node) :], node]


def _collect_strings(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_strings(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _collect_strings(v, out)
