"""`daytwo costs`: the cost ledger by query, agent, model or principal; reprice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json
from daytwo.exceptions import InputError, MissingDependency

if TYPE_CHECKING:
    from daytwo.tracing.pricing import PriceSource

app = typer.Typer(
    help="Cost ledger: LLM-call costs rolled up by query, agent, model or principal.",
    invoke_without_command=True,
)

BY_CHOICES = ("query", "agent", "model", "principal", "session", "tenant", "day", "run")


def _date(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(
            f"{option} {value!r} is not a date", hint="use YYYY-MM-DD or an ISO 8601 time"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _prices() -> PriceSource:
    try:
        from daytwo.models.profiles import PriceBook, load_profiles
    except ImportError as exc:  # pragma: no cover - the models layer ships with daytwo
        raise MissingDependency(
            "the model profiles (prices) are not available", hint="reinstall daytwo"
        ) from exc
    book: PriceSource = PriceBook(load_profiles(state.settings()))
    return book


@app.callback()
def costs(
    ctx: typer.Context,
    by: str = typer.Option("query", "--by", help=f"Group by: {'|'.join(BY_CHOICES)}."),
    since: str | None = typer.Option(None, "--since", help="From this date (UTC)."),
    until: str | None = typer.Option(None, "--until", help="Before this date (UTC)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show costs of model calls and paid tools, and how many calls have no known price."""
    if ctx.invoked_subcommand is not None:
        return
    from daytwo.tracing.ledger import reprice as do_reprice
    from daytwo.tracing.ledger import rollup, total

    if by not in BY_CHOICES:
        raise InputError(f"unknown --by {by!r}", hint=f"use one of: {', '.join(BY_CHOICES)}")
    start, end = _date(since, "--since"), _date(until, "--until")
    store = state.store()
    # Calls stored before a price source was known get today's profile prices first.
    do_reprice(store, _prices(), since=start, only_unknown=True)
    rows = rollup(store, by, since=start, until=end)
    grand = total(rows)
    if json_out:
        data: dict[str, Any] = {
            "by": by,
            "groups": [r.to_dict() for r in rows],
            "total": grand.to_dict(),
        }
        print_json(data)
        return
    from rich.table import Table

    table = Table(by, "cost (USD)", "priced", "unpriced", "tokens in", "tokens out")
    for r in rows:
        key = r.key if r.key is not None else "(none)"
        if r.label:
            key = f"{r.label} [{key[:8]}]" if by in ("query", "trace") else key
        table.add_row(
            key, str(r.cost_usd), str(r.priced_spans), str(r.unpriced_spans),
            str(r.input_tokens), str(r.output_tokens),
        )  # fmt: skip
    console.print(table)
    line = f"total ${grand.cost_usd} over {grand.priced_spans} priced calls"
    if grand.unpriced_spans:
        line += (
            f"; [yellow]{grand.unpriced_spans} calls have no known price[/yellow] "
            "(add prices to the model profile, then `daytwo costs reprice --since DATE`)"
        )
    console.print(line)


@app.command()
def reprice(
    since: str = typer.Option(..., "--since", help="Recompute spans from this date (UTC)."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recompute span costs from the current model-profile prices (after a price change)."""
    from daytwo.tracing.ledger import reprice as do_reprice

    start = _date(since, "--since")
    assert start is not None
    report = do_reprice(state.store(), _prices(), since=start)
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(
            f"repriced {report.spans} calls since {start:%Y-%m-%d}: {report.changed} changed, "
            f"{report.unpriced} still without a price"
        )
