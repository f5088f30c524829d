"""`daytwo agents`: register, list, show, diff, promote and roll back agent versions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

if TYPE_CHECKING:
    from daytwo.runtime.registry import AgentRegistry

__all__ = ["app"]

app = typer.Typer(help="Agents: versioned specs, promotion and rollback.", no_args_is_help=True)


def _registry() -> AgentRegistry:
    from daytwo.runtime.registry import AgentRegistry

    return AgentRegistry(state.store())


@app.command()
def register(
    file: str = typer.Argument(..., help="Agent spec (YAML)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Register FILE as the next version of its agent (unchanged specs keep their version)."""
    from daytwo.runtime.loader import load_spec_file

    spec, source = load_spec_file(Path(file))
    info, created = _registry().register(spec, source)
    data = {**info.as_dict(), "created": created}
    if json_out:
        print_json(data)
        return
    verb = "registered" if created else "unchanged, already"
    console.print(f"{verb} {info.name} v{info.version} ({info.spec_hash[:12]})")


@app.command("list")
def list_(
    name: str | None = typer.Argument(None, help="Only this agent."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every agent version, newest first."""
    infos = _registry().list(name)
    if json_out:
        print_json([i.as_dict() for i in infos])
        return
    table = Table(title="agents")
    for col in ("name", "version", "aliases", "hash", "created"):
        table.add_column(col)
    for i in infos:
        table.add_row(
            i.name, str(i.version), ", ".join(i.aliases), i.spec_hash[:12], i.created_at.isoformat()
        )
    console.print(table)


@app.command()
def show(
    name: str = typer.Argument(..., help="Agent name."),
    version: str | None = typer.Option(None, "--version", "-v", help="Number or alias."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One version's spec (default: prod, else the latest)."""
    import yaml

    data = _registry().show(name, version)
    if json_out:
        print_json(data)
        return
    aliases = f" [{', '.join(data['aliases'])}]" if data["aliases"] else ""
    console.print(f"{data['name']} v{data['version']}{aliases}", style="bold")
    console.print(yaml.safe_dump(data["spec"], sort_keys=False), markup=False)


@app.command()
def diff(
    name: str = typer.Argument(..., help="Agent name."),
    v1: str = typer.Argument(..., help="Old version (number or alias)."),
    v2: str = typer.Argument(..., help="New version (number or alias)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Unified diff of two versions' specs."""
    text = _registry().diff(name, v1, v2)
    if json_out:
        print_json({"name": name, "from": v1, "to": v2, "diff": text, "same": not text})
        return
    console.print(text or "no difference", markup=False, highlight=False)


@app.command()
def promote(
    name: str = typer.Argument(..., help="Agent name."),
    version: str = typer.Argument(..., help="Version to promote."),
    to: str = typer.Option("prod", "--to", help="Alias to move."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Point an alias (prod) at a version; new runs use it."""
    number = _registry().promote(name, version, to)
    if json_out:
        print_json({"name": name, "alias": to, "version": number})
        return
    console.print(f"{name}:{to} -> v{number}")


@app.command()
def rollback(
    name: str = typer.Argument(..., help="Agent name."),
    alias: str = typer.Option("prod", "--alias", help="Alias to move back."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Move an alias back to the version it pointed at before."""
    current, previous = _registry().rollback(name, alias)
    if json_out:
        print_json({"name": name, "alias": alias, "from": current, "to": previous})
        return
    console.print(f"{name}:{alias} rolled back v{current} -> v{previous}")
