"""Quickstart stage of the runtime: the sample support agent, run durably on a few questions.

retrieve (sample KB, as a staff principal) -> local LLM answer with a JSON
schema -> ``orders.status`` chosen between the cached and the live tool from
the gateway's live telemetry. The summary row carries a per-step trace summary.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from daytwo.settings import Settings
    from daytwo.store import Store

__all__ = ["QUESTIONS", "quickstart_stage"]

QUESTIONS = [
    ("How do I reset my password?", "A-1001"),
    ("Can I get a refund for my annual plan?", "A-1003"),
    ("Why are my files not syncing?", "A-1002"),
]


class _Summary(Protocol):
    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None: ...


def quickstart_stage(summary: _Summary, settings: Settings, store: Store) -> None:
    """Register the sample support agent, run it on :data:`QUESTIONS`, summarise each step."""
    from daytwo.exceptions import DaytwoError
    from daytwo.gateway import Gateway
    from daytwo.gateway.samples import register_samples
    from daytwo.knowledge import KnowledgeBase
    from daytwo.knowledge.quickstart import COLLECTION, SAMPLE_KB
    from daytwo.models import get_model
    from daytwo.runtime.adapters import (
        GatewayTelemetry,
        GatewayTools,
        KnowledgeRetriever,
        ModelLLM,
        TracingAudit,
    )
    from daytwo.runtime.loader import load_spec_file
    from daytwo.runtime.runtime import Runtime
    from daytwo.runtime.samples import support_agent_path
    from daytwo.runtime.steps import Services

    started = time.perf_counter()
    kb = KnowledgeBase(store, settings.data_dir, embedder=settings.embedder)
    kb.ingest_path(SAMPLE_KB / "public", COLLECTION)  # unchanged when already ingested
    gateway = Gateway(store, settings)
    register_samples(gateway)
    with contextlib.suppress(DaytwoError):  # exists from an earlier quickstart
        gateway.create_agent("support", ["orders_status_cached", "orders_status_live"])
    model = get_model(settings.default_model, settings)
    services = Services(
        tools=GatewayTools(gateway),
        telemetry=GatewayTelemetry(gateway),
        retriever=KnowledgeRetriever(kb, groups=("staff",)),
        llm=ModelLLM(model),
    )
    with contextlib.suppress(ImportError):
        services.audit = TracingAudit(store)
    spec, source = load_spec_file(support_agent_path())
    runs: list[dict[str, Any]] = []
    rt = Runtime(store, services, data_dir=settings.data_dir)
    rt.launch()
    try:
        info, _ = rt.registry.register(spec, source)
        for question, order_id in QUESTIONS:
            run = rt.start(
                spec.name,
                {"question": question, "order_id": order_id},
                version=info.version,
                principal="alice",
            )
            runs.append(rt.show(run["id"]))
    finally:
        rt.shutdown()
        model.close()
        gateway.close()
        kb.close()
    elapsed = time.perf_counter() - started
    ok = all(r["status"] == "succeeded" for r in runs)
    trace = [
        {
            "run": r["id"][:8],
            "status": r["status"],
            "steps": [
                f"{c['name'].removeprefix('step:')}:{c['status']}"
                + (f"({c['tool']})" if c["tool"] else "")
                + f" {c['ms']}ms"
                for c in r["checkpoints"]
                if c["name"] != "finish"
            ],
            "choice": next(
                (d["data"]["chosen"] for d in r["decisions"] if d["kind"] == "tool_choice"), None
            ),
            "answer": str((r["outputs"].get("answer") or {}).get("answer", ""))[:80]
            if isinstance(r["outputs"].get("answer"), dict)
            else None,
            "error": r["error"],
        }
        for r in runs
    ]
    first = next((t for t in trace if t["status"] == "succeeded"), trace[0] if trace else {})
    detail = (
        f"{sum(r['status'] == 'succeeded' for r in runs)}/{len(runs)} runs of "
        f"{spec.name} v{info.version} succeeded; run {first.get('run')}: "
        + " -> ".join(first.get("steps", []))
    )
    summary.add(
        "runtime",
        ok,
        detail,
        runs=len(runs),
        seconds=round(elapsed, 2),
        tokens=sum(r["tokens"] for r in runs),
        trace=trace,
    )
