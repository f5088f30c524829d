"""The quickstart's "external agent" stage: a plain-Python agent exporting to daytwo.

The daytwo server (gateway at ``/v1/``, OTLP at ``/v1/traces``) is served on a free
loopback port for the stage; the example agent (:mod:`daytwo.sdk.example_agent`)
calls the local model through the gateway with the official ``openai`` SDK and
exports its spans over OTLP. Its trace becomes a run of tenant ``default`` (the
dashboard's), with the gateway's priced model call inside it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from daytwo.settings import Settings
from daytwo.store import Store

__all__ = ["external_agent_stage", "serve_in_thread"]

QUESTION = "Where is my order A-1001?"


class _Summary(Protocol):
    def add(self, stage: str, ok: bool, detail: str, **data: Any) -> None: ...


@contextmanager
def serve_in_thread(settings: Settings, store: Store) -> Iterator[str]:
    """The daytwo app served by uvicorn in a thread on a free loopback port; its URL."""
    import uvicorn

    from daytwo.server.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(settings, store, with_runtime=False, with_gateway=False, with_knowledge=False)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="daytwo-quickstart-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the daytwo server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def external_agent_stage(
    summary: _Summary, settings: Settings, store: Store, *, model: str = "local/smollm2-135m"
) -> str:
    """Run the example agent against a live daytwo server; add the stage row; the run id."""
    from decimal import Decimal

    import daytwo.sdk as dt
    from daytwo.sdk.example_agent import answer
    from daytwo.server.auth import KeyStore
    from daytwo.store.tables.runtime import RunRecord
    from daytwo.tracing import current_handle
    from daytwo.tracing.ledger import rollup

    _, key = KeyStore(store).create(role="operator", tenant="default", name="quickstart agent")
    with serve_in_thread(settings, store) as url:
        dt.init(url, key, service_name="quickstart-support-agent")
        try:
            with dt.observe("support-request", session="quickstart") as obs:
                text = answer(QUESTION, model=model, session="quickstart")
                obs.set_output(text)
            dt.flush()
        finally:
            dt.shutdown()
        handle = current_handle()
        if handle is not None:
            handle.flush()
    run_id = f"otlp-{obs.trace_id}"
    with store.session() as s:
        run = s.get(RunRecord, run_id)
        spans = run.steps_done if run is not None else 0
    cost = next((r for r in rollup(store, "run") if r.key == run_id), None)
    usd = Decimal(0) if cost is None else cost.cost_usd
    unpriced = 0 if cost is None else cost.unpriced_spans
    summary.add(
        "external_agent",
        run is not None,
        f"openai SDK + @observe via the gateway: run {run_id[:17]}…, {spans} spans: "
        + (text[:80] or "(empty answer)"),
        run_id=run_id,
        spans=spans,
        cost_usd=str(usd) if not unpriced else "unknown",
        tokens=0 if cost is None else cost.input_tokens + cost.output_tokens,
    )
    return run_id
