"""Console output shared by every command: Rich console, JSON, one-line errors."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

__all__ = ["console", "err_console", "print_error", "print_json", "progress_bar"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_json(data: Any) -> None:
    """Print machine-readable JSON on stdout (no Rich markup)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


def progress_bar(*, disable: bool = False) -> Any:
    """A transient Rich bar (description, bar, done/total, elapsed); off for ``--json``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=disable,
    )


def print_error(message: str, hint: str | None = None) -> None:
    """One red line on stderr: what is wrong and how to fix it."""
    text = f"error: {message}"
    if hint:
        text += f" — {hint}"
    err_console.print(text, style="bold red", markup=False, soft_wrap=True)
