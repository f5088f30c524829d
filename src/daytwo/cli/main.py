"""The ``daytwo`` command: Typer app and the wrapper that turns errors into one red line."""

from __future__ import annotations

import os
import sys
import traceback

import typer

from daytwo._version import __version__
from daytwo.cli import (
    agents,
    db,
    kb_bulk,  # noqa: F401  (adds bulk/snapshot/restore to kb)
    kb_maintenance,  # noqa: F401  (adds migrate/erase/vacuum/... to kb)
    models,
    runs,
)
from daytwo.cli import audit as audit_cli
from daytwo.cli import costs as costs_cli
from daytwo.cli import eval as eval_cli
from daytwo.cli import kb as kb_cli
from daytwo.cli import model_gateway as model_gateway_cli
from daytwo.cli import serve as serve_cli
from daytwo.cli import tools as tools_cli
from daytwo.cli._context import state
from daytwo.cli._output import err_console, print_error
from daytwo.cli.doctor import doctor
from daytwo.cli.quickstart import quickstart
from daytwo.exceptions import DaytwoError

__all__ = ["app", "run"]

app = typer.Typer(
    name="daytwo",
    help="daytwo keeps AI agents alive, relevant and performant after launch.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"daytwo {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    config: str | None = typer.Option(
        None, "--config", help="Path of the TOML settings file (default ./daytwo.toml)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """daytwo: knowledge layer, tool gateway, durable agent runtime, evals and TEA."""
    state.debug = debug
    if config:
        os.environ["DAYTWO_CONFIG"] = config


app.command("doctor")(doctor)
app.command("quickstart")(quickstart)
app.add_typer(db.app, name="db")
models.app.add_typer(model_gateway_cli.routes_app, name="routes")
models.app.add_typer(model_gateway_cli.budgets_app, name="budgets")
app.add_typer(models.app, name="models")
app.add_typer(agents.app, name="agents")
app.add_typer(runs.app, name="runs")
app.add_typer(eval_cli.app, name="eval")
app.command("serve")(serve_cli.serve)
app.add_typer(serve_cli.keys_app, name="keys")
app.add_typer(serve_cli.grants_app, name="grants")
app.add_typer(tools_cli.app, name="tools")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(costs_cli.app, name="costs")
app.add_typer(kb_cli.app, name="kb")


def run(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI, map errors to exit codes, never show a traceback unasked."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("DAYTWO_DEBUG") == "1"
    state.reset()
    try:
        # Standalone mode lets Typer print usage errors (exit 2) and handle Ctrl-C;
        # our own errors and bugs come through to the handlers below.
        app(args=args, prog_name="daytwo", standalone_mode=True)
        return 0
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except DaytwoError as exc:
        if debug:
            traceback.print_exc()
        print_error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted", style="red")
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        print_error(
            f"internal error: {type(exc).__name__}: {exc}",
            "this is a bug in daytwo; rerun with --debug and report the traceback",
        )
        return 1
    finally:
        state.reset()


def entry() -> None:
    """Console-script entry point."""
    sys.exit(run())
