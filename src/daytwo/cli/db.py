"""`daytwo db`: migrate and inspect the system of record."""

from __future__ import annotations

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

app = typer.Typer(help="Migrate and inspect the system of record.", no_args_is_help=True)


@app.command()
def upgrade(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Apply every pending schema migration (safe to run again)."""
    store = state.store(check_schema=False)
    applied = store.upgrade()
    url = store.engine.url.render_as_string(hide_password=True)
    if json_out:
        print_json({"database": url, "applied": applied})
    elif applied:
        console.print(f"migrated {url}: applied {', '.join(applied)}")
    else:
        console.print(f"{url} is up to date")


@app.command()
def current(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show the schema revisions applied and those the code expects."""
    store = state.store(check_schema=False)
    applied, heads = store.schema_status()
    up_to_date = applied == heads
    if json_out:
        print_json({"applied": sorted(applied), "code": sorted(heads), "up_to_date": up_to_date})
    else:
        status = "up to date" if up_to_date else "needs `daytwo db upgrade`"
        console.print(f"applied: {', '.join(sorted(applied)) or '(none)'} — {status}")
