"""`daytwo models`: the local model, profiles, token budgets, canaries, migration reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json
from daytwo.cli.models_compile import compile_command

app = typer.Typer(
    help="Models: local LLM, profiles, prompt compilation, tokens, canaries, migration reports.",
    no_args_is_help=True,
)


@app.command()
def local(
    prompt: str = typer.Option(..., "--prompt", "-p", help="The user message."),
    max_tokens: int = typer.Option(128, min=1, max=4096, help="Most tokens to generate."),
    temperature: float = typer.Option(0.0, min=0.0, max=2.0, help="Sampling temperature."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Print one completion of the local model (SmolLM2 on llama.cpp)."""
    from daytwo.models.local import LocalModelServer, LocalModelSettings
    from daytwo.models.openai_compat import OpenAICompatProvider
    from daytwo.models.types import Message

    if not prompt.strip():
        from daytwo.exceptions import InputError

        raise InputError("the prompt is empty", hint='pass --prompt "your question"')
    s = state.settings()
    settings = LocalModelSettings(
        model_path=s.local_model_path, n_ctx=s.local_model_ctx, threads=s.local_model_threads
    )
    with LocalModelServer(settings) as server:
        provider = OpenAICompatProvider(server.base_url, model="smollm2")
        try:
            reply = provider.chat(
                [Message(role="user", content=prompt)],
                max_tokens=max_tokens,
                temperature=temperature,
            )
        finally:
            provider.close()
    data = {
        "text": reply.text,
        "usage": {
            "input_tokens": reply.usage.input_tokens,
            "output_tokens": reply.usage.output_tokens,
        },
        "latency_s": round(reply.latency_s, 3),
        "load_s": round(server.load_seconds, 3),
    }
    if json_out:
        print_json(data)
    else:
        console.print(reply.text or "", markup=False)
        console.print(
            f"[dim]{reply.usage.input_tokens} in / {reply.usage.output_tokens} out tokens, "
            f"{reply.latency_s * 1000:.0f} ms[/]"
        )


def _registry() -> Any:
    from daytwo.models.profiles import load_profiles

    return load_profiles(state.settings())


def _local_settings(threads: int | None, batch: int | None, ctx: int | None) -> Any:
    from daytwo.models.local import LocalModelSettings

    s = state.settings()
    n_batch = batch or 512
    return LocalModelSettings(
        model_path=s.local_model_path,
        n_ctx=ctx or s.local_model_ctx,
        threads=threads or s.local_model_threads,
        n_batch=n_batch,
        n_ubatch=min(n_batch, 512),
    )


def _model(
    profile: str, threads: int | None = None, batch: int | None = None, ctx: int | None = None
) -> Any:
    from daytwo.models.instrumented import get_model

    reg = _registry()
    local = None
    if reg.get(profile).provider == "local":
        local = _local_settings(threads, batch, ctx)
    elif threads or batch or ctx:
        from daytwo.exceptions import InputError

        raise InputError(
            f"--threads/--batch/--ctx only apply to local profiles, not {profile}",
            hint="drop them or pick a local profile",
        )
    return get_model(profile, state.settings(), registry=reg, local=local)


@app.command()
def profiles(json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List the model profiles (shipped and <data_dir>/profiles.yaml)."""
    from datetime import UTC, datetime

    from rich.table import Table

    now = datetime.now(UTC)
    rows = []
    for p in _registry().all():
        price = p.price_at(now)
        rows.append(
            {
                "name": p.name,
                "provider": p.provider,
                "model": p.model,
                "context_window": p.context_window,
                "tokenizer": p.tokenizer,
                "features": p.features.model_dump(),
                "price": price.model_dump(mode="json") if price else "unknown",
            }
        )
    if json_out:
        print_json(rows)
        return
    table = Table("profile", "provider", "model", "window", "tokenizer", "price in/out per 1M")
    for r in rows:
        price = r["price"]
        shown = (
            "unknown"
            if price == "unknown"
            else f"{price['input']:g} / {price['output']:g} {price['currency']}"
        )
        table.add_row(
            r["name"], r["provider"], r["model"], str(r["context_window"]), r["tokenizer"], shown
        )
    console.print(table)


@app.command()
def tokens(
    file: str = typer.Argument(..., help="JSONL prompts: {input, tools?, id?} per line."),
    from_profile: str = typer.Option(..., "--from", help="The profile you use now."),
    to_profile: str = typer.Option(..., "--to", help="The profile you migrate to."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Tokens per prompt under both tokenizers, inflation, and target-window overflows."""
    from rich.table import Table

    from daytwo.models.golden import load_rows
    from daytwo.models.migration import token_report

    reg = _registry()
    src, dst = reg.get(from_profile), reg.get(to_profile)
    report = token_report(load_rows(Path(file)), src, dst)
    if json_out:
        print_json(report.model_dump(mode="json"))
        return
    table = Table("id", f"{src.name}", f"{dst.name}", "ratio", f"overflows {dst.name}")
    for r in report.rows:
        table.add_row(
            r.id,
            f"{r.from_tokens} ({r.from_label})",
            f"{r.to_tokens} ({r.to_label})",
            f"{r.ratio:.2f}",
            "[red]yes[/]" if r.to_overflow else "no",
        )
    console.print(table)
    console.print(
        f"total {report.total_from} → {report.total_to} tokens "
        f"(mean ratio {report.mean_ratio:.2f}, max {report.max_ratio:.2f}); "
        f"{report.overflows_to} prompt(s) overflow {dst.name} "
        f"({dst.context_window} tokens)"
    )


canary_app = typer.Typer(
    help="Drift canaries: record outputs and logprobs, check later.", no_args_is_help=True
)
app.add_typer(canary_app, name="canary")

_THREADS = typer.Option(None, "--threads", min=1, help="Local engine: CPU threads.")
_BATCH = typer.Option(None, "--batch", min=1, help="Local engine: batch size (n_batch).")
_CTX = typer.Option(None, "--ctx", min=256, help="Local engine: context size (n_ctx).")


@canary_app.command("record")
def canary_record(
    profile: str = typer.Option(..., "--profile", "-p", help="Model profile."),
    top_k: int = typer.Option(5, min=1, max=20, help="Top-k logprobs stored per token."),
    max_tokens: int = typer.Option(32, min=1, max=512, help="Tokens per answer."),
    seed: int = typer.Option(42, help="Sampling seed."),
    threads: int | None = _THREADS,
    batch: int | None = _BATCH,
    ctx: int | None = _CTX,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run the canary prompts at temperature 0 and store outputs + logprobs + fingerprint."""
    from daytwo.models import canary

    store = state.store()
    model = _model(profile, threads, batch, ctx)
    try:
        with console.status(f"recording {len(canary.DEFAULT_PROMPTS)} canary prompts on {profile}"):
            rid = canary.record(store, model, top_k=top_k, seed=seed, max_tokens=max_tokens)
        fp = canary.fingerprint_of(model)
    finally:
        model.close()
    if json_out:
        print_json({"record_id": rid, "profile": profile, "fingerprint": fp})
    else:
        console.print(f"recorded canary {rid} for {profile}")


@canary_app.command("check")
def canary_check(
    profile: str = typer.Option(..., "--profile", "-p", help="Model profile."),
    record_id: str | None = typer.Option(None, "--record", help="Record id (default: latest)."),
    min_exact: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Fail below this exact-match rate."
    ),
    max_divergence: float = typer.Option(
        0.05, min=0.0, help="Fail above this mean |Δ logprob| of chosen tokens."
    ),
    threads: int | None = _THREADS,
    batch: int | None = _BATCH,
    ctx: int | None = _CTX,
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Run the recorded prompts again; exit 1 when drift is beyond the thresholds."""
    from daytwo.models import canary

    store = state.store()
    model = _model(profile, threads, batch, ctx)
    try:
        with console.status(f"checking canary on {profile}"):
            report = canary.check(
                store,
                model,
                record_id=record_id,
                min_exact_match=min_exact,
                max_divergence=max_divergence,
            )
    finally:
        model.close()
    if json_out:
        print_json(report.model_dump(mode="json"))
    else:
        verdict = "[green]PASS[/]" if report.passed else "[red]DRIFT[/]"
        console.print(
            f"{verdict} {profile}: exact match {report.exact_match_rate:.0%} "
            f"(min {min_exact:.0%}), "
            f"logprob divergence {report.logprob_divergence:.4f} (max {max_divergence})"
        )
        for key, (old, new) in report.fingerprint_changes.items():
            console.print(f"  changed {key}: {old} → {new}", markup=False)
        for d in report.prompts:
            if not d.exact_match:
                console.print(
                    f"  differs at token {d.first_divergence}: {d.prompt!r}", markup=False
                )
        for a in report.recommendations:
            console.print(
                f"  adjust {a.parameter}: {a.current} → {a.suggested} ({a.reason})", markup=False
            )
    if not report.passed:
        raise typer.Exit(1)


@app.command("migrate-report")
def migrate_report(
    from_profile: str = typer.Option(..., "--from", help="The profile you use now."),
    to_profile: str = typer.Option(..., "--to", help="The profile you migrate to."),
    golden: str = typer.Option(
        ..., "--golden", help="JSONL: {input, expected?, schema?} per line."
    ),
    html: str | None = typer.Option(None, "--html", help="Also write the report as HTML here."),
    max_tokens: int = typer.Option(256, min=1, help="Tokens per answer."),
    min_valid: float | None = typer.Option(0.95, help="Gate: target schema-valid rate."),
    max_overflows: int | None = typer.Option(0, help="Gate: target context overflows."),
    min_agreement: float | None = typer.Option(None, help="Gate: answer agreement rate."),
    max_inflation: float | None = typer.Option(None, help="Gate: token inflation ratio."),
    max_cost_ratio: float | None = typer.Option(None, help="Gate: target/source cost."),
    examples: int | None = typer.Option(
        None,
        "--examples",
        min=0,
        help="Good examples available for fine-tuning (default: golden rows with expected).",
    ),
    reprompt_hours: float | None = typer.Option(
        None, "--reprompt-hours", min=0, help="Engineering hours to re-prompt (your estimate)."
    ),
    finetune_hours: float | None = typer.Option(
        None, "--finetune-hours", min=0, help="Engineering hours to fine-tune (your estimate)."
    ),
    hourly_usd: float | None = typer.Option(
        None, "--hourly-usd", min=0, help="Cost of an engineering hour, for the totals."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Replay a golden set on both models and compare; exit 1 when a gate fails.

    Ends with the re-prompt-or-fine-tune decision: the target's failure modes against
    the current model's, both paths priced (hours are your inputs; training tokens at
    the target profile's training price), the recommendation and why.
    """
    from rich.progress import Progress

    from daytwo.models.golden import load_rows
    from daytwo.models.migration import Gates, migration_report
    from daytwo.models.migration_html import render_html
    from daytwo.models.profiles import PriceBook

    rows = load_rows(Path(golden))
    reg = _registry()
    gates = Gates(
        min_valid_rate=min_valid,
        max_overflows=max_overflows,
        min_agreement=min_agreement,
        max_token_inflation=max_inflation,
        max_cost_ratio=max_cost_ratio,
    )
    source = _model(from_profile)
    target = _model(to_profile)
    try:
        with Progress(console=console, transient=True, disable=json_out) as progress:
            task = progress.add_task(f"replaying {len(rows)} rows on both models", total=len(rows))
            report = migration_report(
                source,
                target,
                rows,
                prices=PriceBook(reg),
                gates=gates,
                max_tokens=max_tokens,
                progress=lambda: progress.advance(task),
            )
    finally:
        source.close()
        target.close()
    from daytwo.models.decision import decide_migration

    decision = decide_migration(
        report,
        reg.get(to_profile),
        examples=examples if examples is not None else sum(r.expected is not None for r in rows),
        reprompt_hours=reprompt_hours,
        finetune_hours=finetune_hours,
        hourly_usd=hourly_usd,
    )
    if html is not None:
        Path(html).write_text(render_html(report, decision), encoding="utf-8")
    if json_out:
        print_json({**report.model_dump(mode="json"), "decision": decision.model_dump()})
    else:
        s, t = report.source, report.target
        console.print(f"{from_profile} → {to_profile}: {len(rows)} rows", markup=False)
        for side in (s, t):
            cost = "unknown" if side.cost is None else f"${side.cost:.6f}"
            valid = "n/a" if side.valid_rate is None else f"{side.valid_rate:.0%}"
            console.print(
                f"  {side.profile}: valid {valid}, rungs {side.rungs}, overflows {side.overflows}, "
                f"tokens {side.input_tokens}+{side.output_tokens}, cost {cost}, "
                f"p50 {side.latency_p50_s * 1000:.0f} ms",
                markup=False,
            )
        console.print(
            f"  token inflation {report.token_inflation:.2f}, agreement {report.agreement_rate:.0%}"
        )
        for g in report.gates:
            mark = "[green]pass[/]" if g.passed else "[red]FAIL[/]"
            console.print(f"  gate {g.name}: {g.value} vs {g.threshold} {mark}")
        for p in decision.paths:
            if not p.available:
                console.print(f"  {p.path}: not available ({p.why_not})", markup=False)
                continue
            bits = [f"addresses {', '.join(p.addresses)}"]
            if p.training_usd is not None:
                bits.append(f"training {p.training_tokens} tokens ${p.training_usd}")
            if p.total_usd is not None:
                bits.append(f"total ${p.total_usd}")
            console.print(f"  {p.path}: {'; '.join(bits)}", markup=False)
        console.print(
            f"  recommendation: {decision.recommendation} — {decision.reason}", markup=False
        )
        if html is not None:
            console.print(f"  HTML report: {html}")
    if not report.passed:
        raise typer.Exit(1)


app.command("compile")(compile_command)
