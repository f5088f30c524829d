"""`daytwo models routes|budgets`: the model gateway's routes and budgets, per tenant.

The CLI is the server operator's: it names the tenant (``--tenant``, default
``default``). Tenant admins do the same over ``/api/v1/models/...`` for their own
tenant only. Spending shown is what this machine's counters hold (in Redis when
``DAYTWO_REDIS_URL`` is set; a memory counter of a server process is not visible here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

if TYPE_CHECKING:
    from daytwo.server.llm.limits import GatewayLimits
    from daytwo.server.llm.routes_store import ModelRoutes

__all__ = ["budgets_app", "routes_app"]

routes_app = typer.Typer(
    help="Model routes of the gateway: an alias for an ordered fallback chain of profiles.",
    no_args_is_help=True,
)
budgets_app = typer.Typer(
    help="Model budgets of the gateway: USD and tokens per day, requests per minute.",
    no_args_is_help=True,
)

TENANT = typer.Option("default", "--tenant", help="The tenant the route or budget belongs to.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def _routes() -> ModelRoutes:
    from daytwo.models.profiles import load_profiles
    from daytwo.server.llm.routes_store import ModelRoutes

    return ModelRoutes(state.store(), load_profiles(state.settings()))


def _limits() -> GatewayLimits:
    from daytwo.server.llm.limits import GatewayLimits

    return GatewayLimits(state.store(), state.settings())


@routes_app.command("set")
def routes_set(
    name: str = typer.Argument(..., help="The route's name (what clients pass as model)."),
    to: list[str] = typer.Option(  # noqa: B008
        ..., "--to", help="A target profile; repeat for the fallback order."
    ),
    description: str = typer.Option("", help="What the route is for."),
    tenant: str = TENANT,
    json_out: bool = JSON,
) -> None:
    """Create or replace a route (e.g. `fast --to openai/gpt-4o-mini --to local/smollm2-135m`)."""
    from daytwo.server.auth import check_tenant

    check_tenant(tenant)
    routes = _routes()
    info = routes.set(tenant, name, list(to), description)
    data = {"tenant": tenant, "name": info.name, "targets": info.targets}
    if json_out:
        print_json(data)
    else:
        console.print(f"route {info.name} ({tenant}) → {' → '.join(info.targets)}", markup=False)


@routes_app.command("list")
def routes_list(tenant: str = TENANT, json_out: bool = JSON) -> None:
    """The routes of a tenant."""
    routes = _routes()
    rows = routes.all(tenant)
    if json_out:
        print_json(
            [{"name": r.name, "targets": r.targets, "description": r.description} for r in rows]
        )
        return
    table = Table("route", "targets (in order)", "description")
    for r in rows:
        table.add_row(r.name, " → ".join(r.targets), r.description)
    console.print(table)


@routes_app.command("delete")
def routes_delete(
    name: str = typer.Argument(..., help="The route's name."), tenant: str = TENANT
) -> None:
    """Delete a route of a tenant."""
    routes = _routes()
    routes.delete(tenant, name)
    console.print(f"route {name} ({tenant}) deleted", markup=False)


@budgets_app.command("set")
def budgets_set(
    tenant: str = TENANT,
    key: str | None = typer.Option(None, "--key", help="A key id: the budget of that key."),
    usd_per_day: float | None = typer.Option(None, min=0.0, help="USD per UTC day."),
    tokens_per_day: int | None = typer.Option(None, min=0, help="Tokens per UTC day."),
    rpm: int | None = typer.Option(None, "--rpm", min=1, help="Model calls per minute."),
    json_out: bool = JSON,
) -> None:
    """Set the budget of a tenant (or of one of its keys with --key); unset fields are
    no limit."""
    from daytwo.exceptions import NotFoundError
    from daytwo.server.auth import KeyStore, check_tenant

    check_tenant(tenant)
    if key is not None and not any(
        k.id == key for k in KeyStore(state.store()).list(tenant=tenant)
    ):
        raise NotFoundError(f"tenant {tenant} has no API key {key!r}", hint="daytwo keys list")
    limits = _limits()
    info = limits.set(
        "key" if key else "tenant",
        key or tenant,
        tenant=tenant,
        usd_per_day=usd_per_day,
        tokens_per_day=tokens_per_day,
        requests_per_minute=rpm,
    )
    data = {
        "scope": info.scope,
        "subject": info.subject,
        "usd_per_day": info.usd_per_day,
        "tokens_per_day": info.tokens_per_day,
        "requests_per_minute": info.requests_per_minute,
    }
    if json_out:
        print_json(data)
    else:
        console.print(f"budget of {info.scope} {info.subject}: {data}", markup=False)


@budgets_app.command("list")
def budgets_list(tenant: str = TENANT, json_out: bool = JSON) -> None:
    """The budgets of a tenant and its keys, with what was spent today."""

    limits = _limits()
    rows = limits.all(tenant)
    if json_out:
        print_json(
            [
                {
                    "scope": b.scope,
                    "subject": b.subject,
                    "usd_per_day": b.usd_per_day,
                    "tokens_per_day": b.tokens_per_day,
                    "requests_per_minute": b.requests_per_minute,
                    "spent_usd": b.spent_usd,
                    "spent_tokens": b.spent_tokens,
                }
                for b in rows
            ]
        )
        return
    table = Table("scope", "subject", "USD/day", "tokens/day", "calls/min", "spent today")
    for b in rows:
        table.add_row(
            b.scope,
            b.subject,
            "-" if b.usd_per_day is None else f"{b.usd_per_day:g}",
            "-" if b.tokens_per_day is None else str(b.tokens_per_day),
            "-" if b.requests_per_minute is None else str(b.requests_per_minute),
            f"${b.spent_usd:.6f}, {b.spent_tokens} tokens",
        )
    console.print(table)
