"""One span per tool call: what the removed duplicate span cost a traced run (issue 15).

    python bench/one_span.py --json bench/results/one_span.json

Until 1867d79 the runtime's tool step opened its own ``execute_tool`` span around the
gateway's, so each tool call was stored twice. The tree before that commit cannot run
this workload (a traced 10-step gateway chain on SQLite fails with DatabaseLocked
mid-run: a read-then-write transaction, fixed later by BEGIN IMMEDIATE everywhere), so
the comparison is made on this tree: ``two_spans`` puts the old wrapper back (a
ToolInvoker that opens the same ``execute_tool`` span with the attributes the old
step set, around the gateway call), ``one_span`` is the code as it is.

The workload is a 10-step chain of tool calls through the real gateway (python
backend, schema validation, idempotency ledger, telemetry) with daytwo's tracing
installed: spans stored in a SQLite file of their own, runs and the gateway's ledger
in another. Each contender runs in its own fresh process per round, rounds
interleaved with the order rotated (``_common.interleave``), holding the bench lock.
A process warms up, then times ``RUNS`` runs plus the flush that makes their spans
committed rows; it reports ms per run and the spans stored per run by operation (the
counts show the two contenders differ by exactly one span per call).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STEPS = 10
RUNS = 30
WARMUP = 5
ROUNDS = 5
MODES = ("one_span", "two_spans")


def worker(mode: str, out: Path) -> None:
    """One contender in a fresh process: figures written to ``out`` as JSON."""
    from opentelemetry import trace
    from sqlalchemy import func, select

    from daytwo.runtime import Runtime, Services, ToolOutcome, load_spec
    from daytwo.runtime.adapters import GatewayTools
    from daytwo.runtime.protocols import ToolInvoker
    from daytwo.store import Store
    from daytwo.store.tables.tracing import SpanRow
    from daytwo.tracing import setup_tracing
    from runtime import noop_gateway

    tracer = trace.get_tracer("daytwo.runtime")

    class OldStepSpan:
        """The runtime's own execute_tool span around the call, as before 1867d79."""

        def __init__(self, inner: ToolInvoker) -> None:
            self.inner = inner

        def tools(self, capability: str | None = None) -> list[str]:
            return self.inner.tools(capability)

        def call(
            self, tool: str, arguments: dict[str, Any], *, agent: str, idempotency_key: str
        ) -> ToolOutcome:
            with tracer.start_as_current_span(f"execute_tool {tool}") as span:
                span.set_attribute("gen_ai.operation.name", "execute_tool")
                span.set_attribute("gen_ai.tool.name", tool)
                span.set_attribute("daytwo.run.id", agent)
                span.set_attribute("daytwo.step.id", idempotency_key[:8])
                outcome = self.inner.call(
                    tool, arguments, agent=agent, idempotency_key=idempotency_key
                )
                span.set_attribute("daytwo.tool.cost_usd", outcome.cost_usd)
            return outcome

    tmp = Path(tempfile.mkdtemp(prefix="one_span_"))
    store = Store(f"sqlite:///{tmp / 'daytwo.db'}")
    store.upgrade()
    spans_store = Store(f"sqlite:///{tmp / 'spans.db'}")
    spans_store.upgrade()
    handle = setup_tracing(spans_store)
    gateway = noop_gateway(store)
    spec = {
        "name": "gwchain",
        "steps": [
            {
                "id": f"s{i}",
                "kind": "tool",
                "tool": "gw_noop",
                **({"after": [f"s{i - 1}"]} if i else {}),
            }
            for i in range(STEPS)
        ],
    }
    tools: ToolInvoker = GatewayTools(gateway)
    if mode == "two_spans":
        tools = OldStepSpan(tools)
    rt = Runtime(store, Services(tools=tools), data_dir=tmp, lease_s=0)
    rt.launch()

    def counts() -> dict[str, int]:
        handle.flush()
        with spans_store.session() as s:
            rows = s.execute(select(SpanRow.operation, func.count()).group_by(SpanRow.operation))
            return {str(op): int(n) for op, n in rows}

    try:
        rt.registry.register(load_spec(spec))
        for _ in range(WARMUP):
            res = rt.start("gwchain", {})
            assert res["status"] == "succeeded", res["error"]
        before = counts()
        started = time.perf_counter()
        for _ in range(RUNS):
            res = rt.start("gwchain", {})
            assert res["status"] == "succeeded", res["error"]
        handle.flush()
        elapsed = time.perf_counter() - started
        after = counts()
    finally:
        rt.shutdown()
        handle.shutdown()
    spans = {op: round((n - before.get(op, 0)) / RUNS, 2) for op, n in sorted(after.items())}
    out.write_text(
        json.dumps({"ms_per_run": elapsed * 1000 / RUNS, "spans_per_run": spans}),
        encoding="utf-8",
    )


def _one(mode: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        subprocess.run(
            [sys.executable, __file__, "--worker", mode, str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
        return result


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import add_lock_options, interleave, machine, measuring, write_result

    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (>= 5)")
    ap.add_argument("--json", type=Path, help="Write the results here.")
    add_lock_options(ap)
    args = ap.parse_args()
    spans: dict[str, dict[str, float]] = {}

    def contender(mode: str) -> Any:
        def one_round() -> float:
            got = _one(mode)
            spans[mode] = got["spans_per_run"]
            return float(got["ms_per_run"])

        return one_round

    with measuring(args.lock) as measured:
        # Each process warms up before it measures: no separate warm-up round.
        out = interleave({m: contender(m) for m in MODES}, args.rounds, warmup=False)
    per = out["contenders"]
    for mode in MODES:
        per[mode]["spans_per_run"] = spans[mode]
    result = {
        "benchmark": "one_span",
        "what": f"a {STEPS}-step chain of gateway tool calls, traced to SQLite: ms per run",
        "runs_per_round": RUNS,
        "machine": machine(),
        "lock": measured,
        **out,
        "one_over_two": round(per["one_span"]["median"] / per["two_spans"]["median"], 3),
    }
    write_result(args.json, result)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
