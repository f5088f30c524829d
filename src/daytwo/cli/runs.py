"""`daytwo runs`: start, list, show, approve, cancel, resume, fork and explain agent runs."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json
from daytwo.exceptions import InputError

__all__ = ["app"]

app = typer.Typer(help="Runs: durable agent runs on DBOS.", no_args_is_help=True)

_SERVICES_HELP = "module:function building the runtime services (default: the real layers)."


def _runtime(services: str | None = None, *, launch: bool, **kw: Any) -> Any:
    from daytwo.runtime.adapters import default_services, load_services_factory
    from daytwo.runtime.runtime import Runtime

    settings = state.settings()
    store = state.store()
    if launch:
        factory = load_services_factory(services) if services else default_services
        # Runs started through the API resolve names inside their tenant on this
        # worker too (tools, collections), and tenant tools never run code here.
        from daytwo.server.scoping import scope_services

        svc = scope_services(factory(settings, store), store)
        from daytwo.tracing import setup_tracing

        setup_tracing(store, settings)
    else:
        from daytwo.runtime.steps import Services

        svc = Services()
    kw.setdefault("lease_s", settings.executor_lease_s)
    if kw.get("executor_id") is None:
        kw["executor_id"] = settings.executor_id
    if kw.get("dbos_schema") is None:
        kw["dbos_schema"] = settings.dbos_schema
    rt = Runtime(store, svc, data_dir=settings.data_dir, **kw)
    return rt.launch() if launch else rt


def _parse_inputs(text: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--input is not valid JSON: {exc.msg} at column {exc.colno}",
            hint='pass a JSON object, e.g. --input \'{"question": "..."}\'',
        ) from exc
    if not isinstance(data, dict):
        raise InputError("--input must be a JSON object", hint='e.g. {"question": "..."}')
    return data


def _print_run(run: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(run)
        return
    style = {"succeeded": "green", "failed": "red", "waiting": "yellow"}.get(run["status"], "")
    console.print(f"run {run['id']} {run['agent']} v{run['version']}: {run['status']}", style=style)
    if run.get("error"):
        console.print(f"  {run['error']}", markup=False)
    if run.get("outputs", {}).get("answer") is not None:
        console.print(f"  answer: {json.dumps(run['outputs']['answer'])[:300]}", markup=False)
    for d in run.get("decisions", []):
        console.print(f"  decision [{d['kind']}]: {d['summary']}", markup=False)
    if run.get("checkpoints"):
        table = Table(title="checkpointed steps")
        for col in ("#", "step", "status", "tool", "ms"):
            table.add_column(col)
        for c in run["checkpoints"]:
            table.add_row(
                str(c["n"]), c["name"], str(c["status"]), str(c["tool"] or ""), str(c["ms"])
            )
        console.print(table)
    console.print(f"  steps={run['steps_done']} tokens={run['tokens']} cost_usd={run['cost_usd']}")


@app.command()
def start(
    agent: str = typer.Argument(..., help="Agent name."),
    inputs: str = typer.Option("{}", "--input", "-i", help="Run inputs as a JSON object."),
    version: str | None = typer.Option(None, "--version", "-v", help="Number or alias."),
    principal: str = typer.Option("", "--principal", help="Who the run acts for."),
    services: str | None = typer.Option(None, "--services", help=_SERVICES_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run an agent in this process and print the result."""
    data = _parse_inputs(inputs)
    rt = _runtime(services, launch=True)
    try:
        run = rt.start(agent, data, version=version, principal=principal)
        run = rt.show(run["id"])
    finally:
        rt.shutdown()
    _print_run(run, json_out)


@app.command("list")
def list_(
    agent: str | None = typer.Option(None, "--agent", help="Only this agent."),
    status: str | None = typer.Option(None, "--status", help="Only this status."),
    limit: int = typer.Option(50, min=1, max=1000, help="Most runs to list."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Recent runs, newest first."""
    rt = _runtime(launch=False)
    runs = rt.list_runs(agent=agent, status=status, limit=limit)
    if json_out:
        print_json(runs)
        return
    table = Table(title="runs")
    for col in ("id", "agent", "version", "status", "steps", "cost_usd", "created"):
        table.add_column(col)
    for r in runs:
        table.add_row(
            r["id"],
            r["agent"],
            str(r["version"]),
            r["status"],
            str(r["steps_done"]),
            f"{r['cost_usd']:.5f}",
            r["created_at"],
        )
    console.print(table)


@app.command()
def show(
    run_id: str = typer.Argument(..., help="Run id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One run: status, the exact agent version, decisions and checkpointed steps."""
    rt = _runtime(launch=False)
    try:
        run = rt.show(run_id)
    finally:
        rt.close()
    _print_run(run, json_out)


@app.command()
def approve(
    run_id: str = typer.Argument(..., help="Run id."),
    step: str = typer.Argument(..., help="Approval step id."),
    reject: bool = typer.Option(False, "--reject", help="Reject instead of approving."),
    by: str = typer.Option("operator", "--by", help="Who decides."),
    note: str = typer.Option("", "--note", help="Why."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Answer a run waiting at an approval step (a worker then continues it)."""
    rt = _runtime(launch=False)
    try:
        rt.approve(run_id, step, approved=not reject, by=by, note=note)
    finally:
        rt.close()
    data = {"id": run_id, "step": step, "approved": not reject}
    print_json(data) if json_out else console.print(
        f"run {run_id}: {step} {'rejected' if reject else 'approved'}"
    )


@app.command()
def cancel(
    run_id: str = typer.Argument(..., help="Run id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Cancel a run; it stops before its next step (resume it later if needed)."""
    rt = _runtime(launch=False)
    try:
        rt.cancel(run_id)
    finally:
        rt.close()
    print_json({"id": run_id, "status": "cancelled"}) if json_out else console.print(
        f"run {run_id} cancelled"
    )


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="Run id."),
    services: str | None = typer.Option(None, "--services", help=_SERVICES_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Resume a cancelled or interrupted run from its last completed step, here.

    A failed run is re-run as a new run from its first step that did not succeed
    (the finished steps are reused); the new run is printed, with forked_from.
    """
    rt = _runtime(services, launch=True)
    try:
        run = rt.resume(run_id)
        run = rt.show(run["id"])
    finally:
        rt.shutdown()
    _print_run(run, json_out)


@app.command()
def fork(
    run_id: str = typer.Argument(..., help="Run id."),
    from_step: str = typer.Option(..., "--from-step", help="1-based step number or step id."),
    services: str | None = typer.Option(None, "--services", help=_SERVICES_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Re-run a run from one of its steps with the same inputs (for debugging)."""
    rt = _runtime(services, launch=True)
    try:
        run = rt.fork(run_id, from_step)
        run = rt.show(run["id"])
    finally:
        rt.shutdown()
    _print_run(run, json_out)


@app.command()
def explain(
    run_id: str = typer.Argument(..., help="Run id."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Why the run did what it did: its decisions and steps (the tracing layer's view if any)."""
    from daytwo.exceptions import NotFoundError

    store = state.store()
    try:
        from dataclasses import asdict

        from daytwo.tracing.explain import explain_run, render_text

        steps = explain_run(store, run_id)
    except (ImportError, NotFoundError):
        steps = None  # no spans stored for this run: explain from the run record
    if steps is not None:
        if json_out:
            print_json({"run": run_id, "steps": [asdict(s) for s in steps]})
        else:
            console.print(render_text(steps), markup=False)
        return
    rt = _runtime(launch=False)
    try:
        run = rt.show(run_id)
    finally:
        rt.close()
    lines = [f"run {run['id']}: agent {run['agent']} v{run['version']} {run['status']}"]
    lines += [f"- {d['kind']}: {d['summary']}" for d in run["decisions"]]
    lines += [f"- step {c['name']}: {c['status']} in {c['ms']} ms" for c in run["checkpoints"]]
    if run["error"]:
        lines.append(f"- stopped: {run['error']}")
    if json_out:
        print_json({"run": run_id, "explanation": lines})
    else:
        console.print("\n".join(lines), markup=False)


@app.command()
def worker(
    services: str | None = typer.Option(None, "--services", help=_SERVICES_HELP),
    executor_id: str | None = typer.Option(
        None,
        "--executor-id",
        help="Unique per worker process; default DAYTWO_EXECUTOR_ID, else the first free "
        "slot <host>-<n>. A worker restarted under its old id resumes its runs at once; "
        "runs of a worker that stays gone are taken over by a live one after the lease.",
    ),
    workers: int = typer.Option(4, "--concurrency", min=1, help="Runs at once in this process."),
    seconds: float = typer.Option(0.0, "--seconds", min=0, help="Stop after N s (0: forever)."),
    dbos_schema: str | None = typer.Option(
        None,
        "--dbos-schema",
        help="PostgreSQL schema of DBOS's tables; default DAYTWO_DBOS_SCHEMA, else 'dbos'. "
        "The same as the deployment's `daytwo serve` processes.",
    ),
) -> None:
    """Execute queued runs (and recover this executor's interrupted ones) until stopped.

    With `daytwo serve` in DAYTWO_SERVE_RUNS=enqueue mode (PostgreSQL) these processes
    execute the runs the API queues. SIGTERM stops it like Ctrl-C: the lease is given
    up, runs in flight resume in the next worker.
    """
    import signal

    def _interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    rt = _runtime(
        services, launch=True, executor_id=executor_id, workers=workers, dbos_schema=dbos_schema
    )
    console.print(f"worker {rt.executor_id} ready", style="green")
    started = time.monotonic()
    try:
        while not seconds or time.monotonic() - started < seconds:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        rt.shutdown()
