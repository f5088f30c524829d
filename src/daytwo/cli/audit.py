"""`daytwo audit`: verify the hash-chained audit log, list, checkpoint, export evidence."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, err_console, print_json

if TYPE_CHECKING:
    from daytwo.tracing.audit import AuditLog
    from daytwo.tracing.chain import VerifyReport

app = typer.Typer(
    help="Tamper-evident audit log: verify, list, checkpoint, export evidence bundles.",
    no_args_is_help=True,
)

JSON_OPT = typer.Option(False, "--json", help="Print JSON.")


def _log(*, create_key: bool) -> AuditLog:
    from daytwo.tracing.audit import AuditLog
    from daytwo.tracing.signing import KEY_FILE, AuditSigner

    settings = state.settings()
    store = state.store()
    key = settings.data_dir / KEY_FILE
    signer = AuditSigner.load_or_create(key) if create_key or key.exists() else None
    return AuditLog(store, signer=signer)


def _report(report: VerifyReport, json_out: bool, what: str) -> None:
    if json_out:
        print_json(report.to_dict())
    elif report.ok:
        unsealed = max(report.last_seq - report.sealed_seq, 0)
        tail = f"; {unsealed} newest not yet checkpointed" if unsealed else ""
        console.print(
            f"[green]OK[/green] {what}: {report.records} records, "
            f"{report.checkpoints} signed checkpoints{tail}"
        )
    else:
        assert report.problem is not None
        rid = f" (id {report.problem.record_id})" if report.problem.record_id else ""
        err_console.print(
            f"TAMPERED {what}: first bad record {report.problem.seq}{rid}: {report.problem.reason}",
            style="bold red",
            markup=False,
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def verify(json_out: bool = JSON_OPT) -> None:
    """Check every hash link, the chain head and the signed checkpoints (exit 1 if tampered)."""
    log = _log(create_key=False)
    _report(log.verify(), json_out, "audit log")


@app.command("verify-bundle")
def verify_bundle_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory written by `daytwo audit export`.")],
    public_key: Annotated[
        Path | None,
        typer.Option(
            "--public-key", help="Trusted Ed25519 PEM public key (default: the bundle's own)."
        ),
    ] = None,
    json_out: bool = JSON_OPT,
) -> None:
    """Verify an evidence bundle offline (no database needed)."""
    from daytwo.tracing.bundle import verify_bundle

    _report(verify_bundle(directory, public_key), json_out, f"bundle {directory}")


@app.command("list")
def list_cmd(
    run: str | None = typer.Option(None, "--run", help="Only this run's records."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many records."),
    json_out: bool = JSON_OPT,
) -> None:
    """List audit records in chain order."""
    records = _log(create_key=False).records(run_id=run, limit=limit)
    if json_out:
        print_json([r.to_dict() for r in records])
        return
    from rich.table import Table

    table = Table("seq", "at", "kind", "actor", "subject", "run", "hash")
    for r in records:
        table.add_row(
            str(r.seq), r.at.isoformat(timespec="seconds"), r.kind, r.actor,
            r.subject or "", r.run_id or "", r.hash[:12],
        )  # fmt: skip
    console.print(table)


@app.command()
def checkpoint(json_out: bool = JSON_OPT) -> None:
    """Sign the current chain head with the key in <data_dir>/audit_ed25519.key."""
    cp = _log(create_key=True).checkpoint()
    if json_out:
        print_json(None if cp is None else cp.to_dict())
    elif cp is None:
        console.print("nothing to sign: the log is empty or its head is already checkpointed")
    else:
        console.print(f"signed checkpoint at record {cp.seq} with key {cp.key_id}")


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="Run id (daytwo.run.id).")],
    out: Annotated[Path, typer.Option("--out", help="New directory for the evidence bundle.")],
    json_out: bool = JSON_OPT,
) -> None:
    """Write an evidence bundle of RUN (records + checkpoint + public key) that verifies offline."""
    from daytwo.tracing.bundle import export_bundle

    info = export_bundle(_log(create_key=True), run, out)
    if json_out:
        print_json(info.to_dict())
    else:
        console.print(
            f"wrote {out}: {info.run_records} records of run {run} in records "
            f"{info.first_seq}..{info.last_seq}, sealed by checkpoint {info.checkpoint_seq}"
        )


@app.command("purge-traces")
def purge_traces_cmd(
    ttl_days: int | None = typer.Option(
        None, "--ttl-days", min=1, help="Keep this many days (default: trace_ttl_days setting)."
    ),
    json_out: bool = JSON_OPT,
) -> None:
    """Delete spans and decision records past their TTL (audit records are kept)."""
    from daytwo.tracing.retention import purge_traces

    settings = state.settings()
    days = ttl_days or settings.trace_ttl_days
    log = _log(create_key=False)
    report = purge_traces(log.store, days)
    log.append("admin.purge_traces", "cli", data=report.to_dict() | {"ttl_days": days})
    if json_out:
        print_json(report.to_dict())
    else:
        console.print(
            f"deleted {report.spans} spans and {report.decisions} decision records "
            f"older than {report.cutoff:%Y-%m-%d %H:%M} UTC"
        )
