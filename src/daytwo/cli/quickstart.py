"""`daytwo quickstart`: the main job, end to end on the embedded defaults.

It grows with every layer; each stage adds a row to the summary.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import typer
from rich.table import Table

from daytwo.cli._context import state
from daytwo.cli._output import console, print_json

__all__ = ["quickstart"]


@dataclass
class Summary:
    """What the quickstart did, stage by stage."""

    stages: list[dict[str, Any]] = field(default_factory=list)

    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None:
        self.stages.append({"stage": stage, "ok": ok, "detail": detail, **data})


def _stage_doctor(summary: Summary) -> None:
    from daytwo.cli.doctor import run_checks

    checks = run_checks()
    missing = [c for c in checks if c.required and not c.ok and c.component != "schema"]
    if missing:
        first = missing[0]
        from daytwo.exceptions import MissingDependency

        raise MissingDependency(f"{first.component}: {first.detail}", hint=first.fix)
    detail = f"{sum(c.ok for c in checks)}/{len(checks)} components ok"
    if any(c.component == "schema" and not c.ok for c in checks):
        detail += " (schema migrated by the next stage)"
    summary.add("doctor", True, detail)


def _stage_store(summary: Summary) -> None:
    store = state.store(check_schema=False)
    applied = store.upgrade()
    store.check_schema()
    url = store.engine.url.render_as_string(hide_password=True)
    detail = f"applied {len(applied)} migrations" if applied else "already up to date"
    summary.add("store", True, f"{url}: {detail}", applied=applied)


def _stage_local_model(summary: Summary) -> None:
    from daytwo.models.local import LocalModelServer, LocalModelSettings
    from daytwo.models.openai_compat import OpenAICompatProvider
    from daytwo.models.types import Message

    s = state.settings()
    settings = LocalModelSettings(
        model_path=s.local_model_path, n_ctx=s.local_model_ctx, threads=s.local_model_threads
    )
    with LocalModelServer(settings) as server:
        provider = OpenAICompatProvider(server.base_url, model="smollm2")
        try:
            reply = provider.chat(
                [
                    Message(role="system", content="You are a concise support assistant."),
                    Message(role="user", content="In one sentence: what is a shadow index?"),
                ],
                max_tokens=64,
                temperature=0.0,
                seed=7,
            )
        finally:
            provider.close()
    summary.add(
        "local_model",
        True,
        (reply.text or "").strip().replace("\n", " ")[:160],
        input_tokens=reply.usage.input_tokens,
        output_tokens=reply.usage.output_tokens,
        latency_ms=round(reply.latency_s * 1000, 1),
        load_ms=round(server.load_seconds * 1000, 1),
    )


def _stage_tracing(summary: Summary) -> None:
    from daytwo.models.profiles import PriceBook, load_profiles
    from daytwo.tracing import setup_tracing

    settings = state.settings()
    setup_tracing(state.store(), settings, prices=PriceBook(load_profiles(settings)))
    summary.add("tracing", True, "spans, costs and decisions stored; audit log signed")


def _stage_knowledge(summary: Summary) -> None:
    from daytwo.knowledge.quickstart import quickstart_stage

    quickstart_stage(summary, state.settings(), state.store())


def _stage_runtime(summary: Summary) -> None:
    from daytwo.runtime.quickstart import quickstart_stage

    quickstart_stage(summary, state.settings(), state.store())


def _stage_evals(summary: Summary) -> None:
    from contextlib import ExitStack

    from daytwo.evals.quickstart import quickstart_stage
    from daytwo.runtime.eval_runner import agent_runner_factory

    settings, store = state.settings(), state.store()
    with ExitStack() as stack:
        runner = agent_runner_factory(settings, store)("support", None, stack)
        quickstart_stage(summary, settings, store, runner=runner)


def _stage_external_agent(summary: Summary) -> None:
    from daytwo.server.quickstart import external_agent_stage

    external_agent_stage(summary, state.settings(), state.store())


def _flush_tracing() -> None:
    from daytwo.tracing import current_handle

    handle = current_handle()
    if handle is not None:
        handle.flush()


STAGES = [
    _stage_doctor,
    _stage_store,
    _stage_tracing,
    _stage_local_model,
    _stage_knowledge,
    _stage_runtime,
    _stage_evals,
    _stage_external_agent,
]


def _print_table(summary: Summary, elapsed: float) -> None:
    table = Table(title=f"daytwo quickstart — done in {elapsed:.1f} s")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("figures")
    for st in summary.stages:
        figures = ", ".join(
            f"{k}={v}"
            for k, v in st.items()
            if k not in {"stage", "ok", "detail", "applied"} and not isinstance(v, (dict, list))
        )
        table.add_row(st["stage"], st["detail"], figures)
    console.print(table)


def quickstart(
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
    serve: bool = typer.Option(
        True, "--serve/--no-serve", help="Serve the dashboard afterwards (Ctrl-C stops)."
    ),
    host: str = typer.Option("127.0.0.1", help="Dashboard host (with --serve)."),
    port: int = typer.Option(8765, min=1, max=65535, help="Dashboard port (with --serve)."),
) -> None:
    """Run the main job end to end on the embedded defaults, print a summary, serve the dashboard.

    Stages: doctor, store migration, tracing, one local-model completion, the sample
    knowledge base searched as two principals, the sample support agent run durably,
    its golden set evaluated and gated against the previous run, and a plain-Python
    agent (openai SDK + daytwo.sdk) calling the local model through the gateway and
    exporting its trace to daytwo.
    """
    if serve:
        from daytwo.server.launch import check_port

        check_port(host, port)  # fail before the work, not after it
    summary = Summary()
    started = time.perf_counter()
    with console.status("running the quickstart…") as status:
        for stage in STAGES:
            status.update(f"quickstart: {stage.__name__.removeprefix('_stage_')}…")
            stage(summary)
        _flush_tracing()
    elapsed = time.perf_counter() - started
    if json_out:
        print_json({"ok": True, "seconds": round(elapsed, 2), "stages": summary.stages})
    else:
        _print_table(summary, elapsed)
    if serve:
        from daytwo.server.launch import serve_dashboard

        state.reset()  # the server opens its own store
        serve_dashboard(state.settings(), host=host, port=port)
