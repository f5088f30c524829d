"""trace_writer = "process": spans become rows in a writer process beside the traced one."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from daytwo.exceptions import ConfigError
from daytwo.store import Store
from daytwo.store.tables.tracing import DecisionRow, SpanRow
from daytwo.tracing import Price, TracingHandle, record_decision, setup_tracing
from daytwo.tracing.writer import WriterProcess


class _Prices:
    def price(self, model: str, at: datetime, /) -> Price | None:
        return Price(input=Decimal("0.15"), output=Decimal("0.6")) if model == "m" else None


def _emit(prefix: str) -> None:
    """Spans that exercise every column: costs, a wrapper, odd attribute types, an error."""
    tracer = trace.get_tracer("daytwo.test")
    with tracer.start_as_current_span(f"{prefix} run", attributes={"daytwo.run.id": 7}):
        with tracer.start_as_current_span(f"{prefix} framework llm") as outer:
            outer.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"})
            with tracer.start_as_current_span(f"{prefix} chat m") as inner:
                inner.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "m",
                        "gen_ai.usage.input_tokens": 1200,
                        "gen_ai.usage.output_tokens": 80,
                        "daytwo.agent.name": "support",
                        "daytwo.agent.version": 3,
                        "tags": ("a", "b"),
                        "scores": (0.5, 1.0),
                        "big": 2**70,
                    }
                )
        with tracer.start_as_current_span(f"{prefix} unpriced") as unpriced:
            unpriced.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "x"})
        with tracer.start_as_current_span(f"{prefix} tool " + "n" * 300) as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            assert record_decision("tool_choice", "Chose it.", {"why": ["fast", 1]})
            tool.set_status(Status(StatusCode.ERROR, "timed out"))


_IDS_AND_TIMES = {"span_id", "trace_id", "parent_span_id", "start_time", "end_time"}


def _rows(store: Store, prefix: str) -> list[dict[str, Any]]:
    """The stored spans named ``prefix ...``, without what differs between two runs."""
    with store.session() as s:
        spans = s.scalars(sa.select(SpanRow).where(SpanRow.name.startswith(prefix)))
        rows = []
        for span in spans:
            row = {c.name: getattr(span, c.key) for c in sa.inspect(SpanRow).columns}
            row["name"] = row["name"].removeprefix(prefix)
            row["parent"] = span.parent_span_id is not None
            row["duration_ms"] = row["duration_ms"] >= 0
            for key in _IDS_AND_TIMES:
                row.pop(key)
            rows.append(row)
        decisions = list(s.scalars(sa.select(DecisionRow)))
    assert {d.kind for d in decisions} == {"tool_choice"}
    return sorted(rows, key=lambda r: r["name"])


def test_the_writer_process_stores_the_rows_the_thread_stores(store: Store) -> None:
    """Same spans, both writers: identical rows, costs and decisions."""
    rows: dict[str, list[dict[str, Any]]] = {}
    for writer in ("thread", "process"):
        prefix = writer[:3]  # one length: names are cut at 255 characters
        handle = setup_tracing(store, prices=_Prices(), writer=writer)
        _emit(prefix)
        assert handle.flush()
        if writer == "process":
            sink = handle.store_processor.sink
            assert isinstance(sink, WriterProcess)
            assert sink.pid is not None
            assert sink.pid != os.getpid()
        handle.shutdown()
        rows[writer] = _rows(store, prefix)
    assert rows["process"] == rows["thread"]
    by_name = {r["name"]: r for r in rows["process"]}
    assert by_name[" chat m"]["cost_usd"] == "0.000228"
    assert by_name[" chat m"]["agent"] == "support@3"
    assert by_name[" framework llm"]["cost_status"] == "wrapper"
    assert by_name[" unpriced"]["cost_status"] == "unknown"
    assert by_name[" run"]["run_id"] == "7"
    assert by_name[" tool " + "n" * 246]["status"] == "error"
    with store.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(DecisionRow)) == 2


def test_a_store_in_memory_is_refused() -> None:
    memory = Store("sqlite://")
    memory.upgrade()
    try:
        with pytest.raises(ConfigError, match="in memory") as caught:
            setup_tracing(memory, writer="process")
        assert "trace_writer 'thread'" in (caught.value.hint or "")
    finally:
        memory.dispose()


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _count(store: Store, prefix: str) -> int:
    with store.session() as s:
        found = s.scalar(
            sa.select(sa.func.count()).select_from(SpanRow).where(SpanRow.name.startswith(prefix))
        )
    return int(found or 0)


def test_when_the_writer_dies_the_traced_process_takes_over_and_loses_nothing(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    handle: TracingHandle = setup_tracing(sqlite_store, writer="process")
    sink = handle.store_processor.sink
    assert isinstance(sink, WriterProcess)
    tracer = trace.get_tracer("daytwo.test")
    for i in range(50):
        with tracer.start_as_current_span(f"before {i}"):
            pass
    assert handle.flush()
    pid = sink.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for i in range(50):
        with tracer.start_as_current_span(f"after {i}"):
            pass
    with caplog.at_level(logging.WARNING, logger="daytwo.tracing.writer"):
        assert handle.flush()
    assert "span writer process exited" in caplog.text
    assert sink.pid is None  # this process writes now
    for i in range(20):
        with tracer.start_as_current_span(f"later {i}"):
            pass
    assert handle.flush()
    assert (_count(sqlite_store, "before"), _count(sqlite_store, "after")) == (50, 50)
    assert _count(sqlite_store, "later") == 20
    assert handle.store_processor.dropped == 0
    handle.shutdown()


def test_the_writer_stores_what_it_was_sent_after_the_traced_process_dies(
    sqlite_store: Store, tmp_path: Path
) -> None:
    """Batches in the pipe are committed, and the writer exits at the end of its input."""
    program = textwrap.dedent(
        f"""
        import os
        from opentelemetry import trace
        from daytwo.store import Store
        from daytwo.tracing import setup_tracing

        store = Store({sqlite_store.url!r})
        handle = setup_tracing(store, writer="process")
        tracer = trace.get_tracer("daytwo.test")
        for i in range(2000):
            with tracer.start_as_current_span(f"orphan {{i}}"):
                pass
        processor = handle.store_processor
        # Hand every queued span to the writer, without waiting for its commit.
        assert processor._flush_once()
        print(processor.sink.pid, flush=True)
        os._exit(0)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
    )
    assert done.returncode == 0, done.stderr
    writer_pid = int(done.stdout.split()[-1])
    assert _wait_for(lambda: _count(sqlite_store, "orphan") == 2000)

    def gone() -> bool:
        try:
            os.kill(writer_pid, 0)
        except ProcessLookupError:
            return True
        # A zombie (exited, not yet reaped by init) counts as gone.
        stat = Path(f"/proc/{writer_pid}/stat")
        return stat.exists() and stat.read_text().split(") ")[-1].startswith("Z")

    assert _wait_for(gone)


def test_the_writer_process_stops_with_its_handle(sqlite_store: Store) -> None:
    handle = setup_tracing(sqlite_store, writer="process")
    sink = handle.store_processor.sink
    assert isinstance(sink, WriterProcess)
    pid = sink.pid
    assert pid is not None
    with trace.get_tracer("daytwo.test").start_as_current_span("last"):
        pass
    handle.shutdown()
    assert _count(sqlite_store, "last") == 1
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped by shutdown: not our child any more


def test_settings_choose_the_writer(sqlite_store: Store, tmp_path: Path) -> None:
    from daytwo.settings import Settings

    settings = Settings(data_dir=tmp_path, trace_writer="process")
    handle = setup_tracing(sqlite_store, settings)
    assert handle.writer == "process"
    assert isinstance(handle.store_processor.sink, WriterProcess)
    handle.shutdown()
    handle = setup_tracing(sqlite_store, Settings(data_dir=tmp_path))
    assert handle.writer == "thread"
    handle.shutdown()


def test_a_writer_that_cannot_start_leaves_the_spans_to_this_process(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with caplog.at_level(logging.ERROR, logger="daytwo.tracing.writer"):
        handle = setup_tracing(sqlite_store, writer="process")
    assert "could not start the span writer process" in caplog.text
    sink = handle.store_processor.sink
    assert isinstance(sink, WriterProcess)
    assert sink.pid is None
    with trace.get_tracer("daytwo.test").start_as_current_span("kept anyway"):
        pass
    assert handle.flush()
    assert _count(sqlite_store, "kept anyway") == 1
    handle.shutdown()


def test_a_batch_marshal_cannot_carry_is_written_here_and_the_writer_keeps_the_rest(
    sqlite_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    from daytwo.tracing.processor import span_record

    provider = TracerProvider()
    with provider.get_tracer("t").start_as_current_span("odd") as odd:
        pass
    with provider.get_tracer("t").start_as_current_span("plain") as plain:
        pass
    odd_record = list(span_record(odd, None))  # type: ignore[arg-type]
    odd_record[10] = {"amount": Decimal("1.5")}  # no plain value: marshal refuses it
    sink = WriterProcess(sqlite_store)
    try:
        with caplog.at_level(logging.WARNING, logger="daytwo.tracing.writer"):
            sink.write([tuple(odd_record)], [])  # type: ignore[list-item]
        assert "written in this process" in caplog.text
        sink.write([span_record(plain, None)], [])  # type: ignore[arg-type]
        assert sink.flush(30)
        assert sink.pid is not None  # the writer process still runs
    finally:
        sink.close()
    with sqlite_store.session() as s:
        rows = {r.name: r.attributes for r in s.scalars(sa.select(SpanRow))}
    assert rows == {"odd": {"amount": "1.5"}, "plain": {}}
