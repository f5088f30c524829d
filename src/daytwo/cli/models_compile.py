"""`daytwo models compile`: an agent's abstract prompt compiled for another model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json
from daytwo.exceptions import InputError

if TYPE_CHECKING:
    from daytwo.models.prompts import CompiledPrompt
    from daytwo.runtime.spec import AgentSpec, LLMStep

__all__ = ["compile_command"]


def _agent(agent: str, version: str | None) -> tuple[AgentSpec, str]:
    """(spec, where it came from): a YAML file, else a registered agent's version."""
    path = Path(agent)
    if agent.endswith((".yaml", ".yml")) or path.is_file():
        from daytwo.runtime.loader import load_spec_file

        spec, _ = load_spec_file(path)
        return spec, str(path)
    from daytwo.runtime.registry import AgentRegistry

    registry = AgentRegistry(state.store())
    number = registry.resolve(agent, version)
    return registry.spec(agent, number), f"{agent} v{number}"


def _step(spec: AgentSpec, step_id: str | None) -> LLMStep:
    from daytwo.models.prompts import PromptDefinition
    from daytwo.runtime.spec import LLMStep

    steps = [s for s in (*spec.steps, *spec.degraded) if isinstance(s, LLMStep)]
    defined = [s for s in steps if isinstance(s.prompt, PromptDefinition)]
    if step_id is not None:
        chosen = next((s for s in steps if s.id == step_id), None)
        if chosen is None:
            raise InputError(
                f"agent {spec.name!r} has no llm step {step_id!r}",
                hint=f"llm steps: {', '.join(s.id for s in steps) or 'none'}",
            )
        if not isinstance(chosen.prompt, PromptDefinition):
            raise InputError(
                f"step {step_id!r} of agent {spec.name!r} has a plain prompt string, "
                "not a prompt definition",
                hint="write its prompt as a mapping: intent, instructions, examples, slots",
            )
        return chosen
    if not defined:
        raise InputError(
            f"agent {spec.name!r} has no llm step with a prompt definition",
            hint="write an llm step's prompt as a mapping: intent, instructions, examples, slots",
        )
    return defined[0]


def _context(input_json: str | None, context_file: str | None) -> dict[str, Any] | None:
    if context_file is not None:
        try:
            data = json.loads(Path(context_file).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"cannot read the context file {context_file}: {exc}",
                hint='give a JSON file {"input": {...}, "steps": {...}}',
            ) from exc
        if not isinstance(data, dict):
            raise InputError(f"{context_file} is not a JSON object", hint='{"input": {...}}')
        return {"input": data.get("input", {}), "steps": data.get("steps", {})}
    if input_json is not None:
        try:
            value = json.loads(input_json)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"--input is not valid JSON: {exc.msg}", hint='e.g. --input \'{"question": "hi"}\''
            ) from exc
        return {"input": value, "steps": {}}
    return None


def _row(c: CompiledPrompt) -> dict[str, str]:
    slots = ", ".join(
        f"{s.name} {s.kept}"
        + (f" {s.items_kept}/{s.items}" if s.items is not None and s.kept == "partial" else "")
        for s in c.slots
    )
    options = ", ".join(k for k in c.extra if k not in ("grammar",))
    if "grammar" in c.extra:
        options = f"grammar ({len(c.extra['grammar'])} chars), {options}".strip(", ")
    return {
        "prompt tokens": f"{c.prompt_tokens.tokens} ({c.prompt_tokens.label})",
        "tokenizer": c.tokenizer,
        "window / reserved": f"{c.context_window} / {c.max_tokens}",
        "chat template": c.chat_template,
        "messages": " ".join(m.role for m in c.messages),
        "system": "folded into the first user turn" if c.system_folded else "system role",
        "few-shot": c.few_shot,
        "structure": c.structured or "none",
        "temperature": "engine default" if c.temperature is None else f"{c.temperature:g}",
        "options": options or "-",
        "slots": slots or "-",
    }


def compile_command(
    agent: str = typer.Option(..., "--agent", "-a", help="Registered agent name or a YAML file."),
    to_profile: str = typer.Option(..., "--to", help="The profile to compile for."),
    from_profile: str | None = typer.Option(
        None, "--from", help="The source profile to compare with (default: the agent's model)."
    ),
    version: str | None = typer.Option(None, "--version", "-v", help="Agent version or alias."),
    step: str | None = typer.Option(None, "--step", help="The llm step (default: the first)."),
    input_json: str | None = typer.Option(
        None, "--input", help="The run input as JSON (renders {{ input.* }} slots)."
    ),
    context_file: str | None = typer.Option(
        None, "--context", help='JSON file {"input": ..., "steps": ...} to render the slots.'
    ),
    max_tokens: int | None = typer.Option(
        None, "--max-tokens", min=1, help="Tokens kept for the answer (default: the step's)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compile an agent's abstract prompt for a profile; show it and its token counts next
    to the source model's. Exit 2 when the mandatory slots do not fit the target."""
    from rich.table import Table

    from daytwo.models.profiles import load_profiles
    from daytwo.models.prompts import compile_prompt
    from daytwo.runtime.steps import render_definition

    spec, where = _agent(agent, version)
    llm_step = _step(spec, step)
    context = _context(input_json, context_file)
    definition = render_definition(llm_step, context)
    settings = state.settings()
    registry = load_profiles(settings)
    src = registry.get(from_profile or llm_step.model or spec.model or settings.default_model)
    dst = registry.get(to_profile)
    reserve = max_tokens or llm_step.max_tokens
    source = compile_prompt(definition, src, max_tokens=reserve)
    target = compile_prompt(definition, dst, max_tokens=reserve)
    ratio = (
        target.prompt_tokens.tokens / source.prompt_tokens.tokens
        if source.prompt_tokens.tokens
        else 0.0
    )
    if json_out:
        print_json(
            {
                "agent": spec.name,
                "source_of_spec": where,
                "step": llm_step.id,
                "templates_rendered": context is not None,
                "source": source.model_dump(mode="json"),
                "target": target.model_dump(mode="json"),
                "token_ratio": ratio,
            }
        )
        return
    console.print(
        f"{spec.name} ({where}), step {llm_step.id!r}: {src.name} → {dst.name}", markup=False
    )
    if context is None:
        console.print("[dim]templates shown as written; pass --input or --context to fill them[/]")
    table = Table("", src.name, dst.name)
    a, b = _row(source), _row(target)
    for key in a:
        table.add_row(key, a[key], b[key])
    console.print(table)
    console.print(f"token ratio {dst.name}/{src.name}: {ratio:.2f}", markup=False)
    for note in target.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"\n[bold]{dst.name} request[/]")
    if target.rendered is not None:
        console.print(target.rendered, markup=False, highlight=False)
    else:
        for m in target.messages:
            console.print(f"[bold]{m.role}[/]")
            if m.content:
                console.print(m.content, markup=False, highlight=False)
            for call in m.tool_calls:
                console.print(f"  tool call {call.name}({call.arguments})", markup=False)
        if target.tools:
            console.print(f"tools: {json.dumps(target.tools)}", style="dim", markup=False)
