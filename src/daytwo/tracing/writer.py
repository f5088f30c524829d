"""The span writer process: stores the traced process's spans beside it, not in it.

With the in-thread writer (the default), turning a span into a row and binding it to
the INSERT runs in a thread of the traced process, under the GIL the traced thread
needs too: about 6 µs per span that the traced program waits for. With
``trace_writer = "process"`` the traced process only reads each span into a
:data:`~daytwo.tracing.processor.SpanRecord` (ids, times, attributes and the priced
cost: the price source stays in the traced process) and pipes batches of them to
a writer process running :func:`main`, which converts and inserts them on its own
interpreter (:class:`~daytwo.tracing.processor.RowWriter`, the same code as the
in-thread writer).

Durability is the in-thread writer's or better:

- ``force_flush`` returns only when the writer process has committed every batch sent
  so far (each batch is acknowledged after its commit).
- When the traced process dies, the batches already in the pipe are still read and
  committed: the writer exits at the end of its input.
- When the writer process dies (or cannot start), the traced process itself writes
  the batches the writer had not acknowledged, and every later one (in-thread, with a
  warning). A batch committed just before the writer died, but not yet acknowledged,
  is written again and refused as a duplicate: it is counted as dropped although it
  is stored.

The pipe is private to the two processes, and the writer takes nothing but spans from
it: it is started with the traced interpreter's ``sys.executable`` and import path, in
its own session (a Ctrl-C in the terminal stops the traced program, not its writer,
which finishes the pipe and exits).
"""

from __future__ import annotations

import logging
import marshal
import os
import struct
import subprocess
import sys
import threading
from collections import deque
from contextlib import suppress
from datetime import datetime
from typing import IO, Any

from daytwo.store import Store
from daytwo.tracing.processor import RowWriter, SpanRecord

__all__ = ["WriterProcess", "main"]

log = logging.getLogger(__name__)

_PROGRAM = "import sys; from daytwo.tracing.writer import main; sys.exit(main())"
"""What the writer process runs (``-m`` would run this module a second time as
``__main__``: the package imports it first)."""
_FRAME = struct.Struct(">cI")
"""A message: one byte of kind (``S`` set-up, ``B`` batch) and the payload's length."""
_ACK = struct.Struct(">QI")
"""The writer's answer to each batch: its sequence number and how many spans it lost."""


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    """``size`` bytes (None at the end of input); ``stream`` may return short reads."""
    data = stream.read(size)
    if data is None:  # pragma: no cover - a blocking pipe never says "try again"
        return None
    while 0 < len(data) < size:
        more = stream.read(size - len(data))
        if not more:
            break
        data += more
    return data if len(data) == size else None


def _read_frame(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    head = _read_exactly(stream, _FRAME.size)
    if head is None:
        return None
    kind, size = _FRAME.unpack(head)
    payload = _read_exactly(stream, size) if size else b""
    return None if payload is None else (kind, payload)


def _encode(seq: int, records: list[SpanRecord], decisions: list[dict[str, Any]]) -> bytes:
    """A batch as ``marshal`` data: plain values only (attribute values are strings,
    numbers, booleans and tuples of them), so that reading it back builds data and
    never runs code, unlike ``pickle``; decision times travel as ISO text."""
    if decisions:
        decisions = [{**d, "at": d["at"].isoformat()} for d in decisions]
    return marshal.dumps((seq, records, decisions))


def _decode(payload: bytes) -> tuple[int, list[SpanRecord], list[dict[str, Any]]]:
    # Only the traced process writes this pipe (see the module docstring).
    seq, records, decisions = marshal.loads(payload)  # noqa: S302
    for decision in decisions:
        decision["at"] = datetime.fromisoformat(decision["at"])
    return seq, records, decisions


class WriterProcess:
    """A :class:`~daytwo.tracing.processor.SpanSink` that pipes batches to a writer
    process (started here) and waits for its acknowledgements on :meth:`flush`."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cond = threading.Condition()
        self._pending: deque[tuple[int, list[SpanRecord], list[dict[str, Any]]]] = deque()
        self._sent = 0
        self._acked = 0
        self._lost = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dead = False
        # Writes here what the writer process cannot: everything once it is gone
        # (``_taken_over``), or one batch that marshal cannot carry.
        self._here = RowWriter(store)
        self._taken_over = False
        self._start()

    def _start(self) -> None:
        env = dict(os.environ)
        # The same modules as this interpreter, wherever daytwo was imported from.
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _PROGRAM],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                # Unbuffered: nothing of this process's is left in a buffer that a forked
                # child could write into the pipe when it closes its copy (after_fork).
                bufsize=0,
                env=env,
                start_new_session=True,
            )
        except OSError:
            # Tracing must never break the traced program: write spans here instead.
            log.exception("could not start the span writer process: spans are written here")
            self._taken_over = True
            return
        self._proc, self._dead = proc, False
        self._sent = self._acked = 0
        self._pending.clear()
        config = {"url": self.store.url, "busy_timeout_ms": self.store.busy_timeout_ms}
        try:
            self._send(b"S", marshal.dumps(config))
        except OSError:
            self._dead = True  # the next write or flush takes over
        threading.Thread(
            target=self._read_acks, args=(proc,), name="daytwo-span-acks", daemon=True
        ).start()

    @property
    def pid(self) -> int | None:
        """The writer process's id (None once this process writes its spans itself)."""
        return None if self._proc is None or self._taken_over else self._proc.pid

    def _send(self, kind: bytes, payload: bytes) -> None:
        assert self._proc is not None
        stdin = self._proc.stdin
        assert stdin is not None
        view = memoryview(_FRAME.pack(kind, len(payload)) + payload)
        while view:
            written = stdin.write(view)
            view = view[written or 0 :]

    def _read_acks(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        while True:
            data = _read_exactly(proc.stdout, _ACK.size)
            with self._cond:
                if proc is not self._proc:
                    return  # a forked child's copy, or replaced
                if data is None:
                    self._dead = True
                    self._cond.notify_all()
                    return
                seq, lost = _ACK.unpack(data)
                self._acked, self._lost = seq, self._lost + lost
                while self._pending and self._pending[0][0] <= seq:
                    self._pending.popleft()
                self._cond.notify_all()

    def _take_over(self) -> None:
        """The writer process is gone: write what it did not acknowledge, here."""
        proc = self._proc
        code = proc.poll() if proc is not None else None
        log.warning("the span writer process exited (%s): spans are written in this process", code)
        self._taken_over = True
        with self._cond:
            pending = list(self._pending)
            self._pending.clear()
        for _seq, records, decisions in pending:
            try:
                self._here.write(records, decisions)
            except Exception:
                self._lost += len(records)
                log.exception("could not store %d spans", len(records))

    def write(self, records: list[SpanRecord], decisions: list[dict[str, Any]]) -> None:
        """Send one batch (write it here when the writer process is gone)."""
        if self._proc is None and not self._taken_over:
            self._start()  # the first batch of a forked child
        if self._taken_over:  # the writer is gone, or could not start
            self._here.write(records, decisions)
            return
        try:
            payload = _encode(self._sent + 1, records, decisions)
        except ValueError:
            # A value marshal cannot carry (the SDK only lets plain ones through): this
            # batch is written here, the writer process keeps the others.
            log.warning("a batch of %d spans is written in this process", len(records))
            self._here.write(records, decisions)
            return
        with self._cond:
            self._sent += 1
            self._pending.append((self._sent, records, decisions))
            dead = self._dead
        if not dead:
            try:
                self._send(b"B", payload)
                return
            except OSError:  # a closed pipe: the writer is gone
                pass
        self._take_over()  # writes this batch too: it is among the pending ones

    def flush(self, timeout_s: float) -> bool:
        """Wait until the writer process committed every batch sent; False on timeout."""
        if self._taken_over or self._proc is None:
            return True
        with self._cond:
            done = self._cond.wait_for(
                lambda: self._dead or self._acked >= self._sent, timeout=timeout_s
            )
            dead = self._dead
        if dead:
            self._take_over()
            return True
        return done

    def dropped(self) -> int:
        """Spans the writer process (or the take-over) could not store."""
        return self._lost

    def after_fork(self) -> None:
        """In a forked child: leave the parent's writer to the parent, start one later."""
        proc, self._proc = self._proc, None
        if proc is not None:
            # This child's copies of the pipe: unbuffered, so closing them writes
            # nothing, and the writer sees the end of its input when the parent closes.
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    with suppress(OSError):
                        stream.close()
        self._cond = threading.Condition()
        self._pending = deque()
        self._dead = False
        self._lost = 0
        self._here.after_fork()

    def close(self) -> None:
        """End the writer's input and wait for it to exit (it commits what it read)."""
        proc = self._proc
        if proc is None:
            return
        with self._cond:
            self._proc = None
            self._cond.notify_all()
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            log.warning("the span writer process did not exit: killed")
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def main() -> int:
    """The writer process: read the set-up, then batches until the input ends."""
    logging.basicConfig(level=logging.WARNING, format="daytwo span writer: %(message)s")
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    first = _read_frame(stdin)
    if first is None or first[0] != b"S":
        log.error("expected the set-up message first; this program is started by daytwo")
        return 2
    config = marshal.loads(first[1])  # noqa: S302 - from the traced process only
    store = Store(config["url"], busy_timeout_ms=config["busy_timeout_ms"])
    writer = RowWriter(store)
    # One batch, one statement where it fits: splitting batches to convert one chunk
    # while SQLite stores the previous one measured slower (a commit per chunk).
    try:
        while (frame := _read_frame(stdin)) is not None:
            seq, records, decisions = _decode(frame[1])
            lost = 0
            try:
                writer.write(records, decisions)
            except Exception:
                lost = len(records)
                log.exception("could not store %d spans", len(records))
            try:
                stdout.write(_ACK.pack(seq, lost))
                stdout.flush()
            except OSError:
                pass  # the traced process is gone: keep storing what the pipe holds
    finally:
        store.dispose()
    return 0
