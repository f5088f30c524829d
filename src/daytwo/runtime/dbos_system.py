"""The DBOS system database: its engine, its configuration, and the operations on it.

The runtime reaches DBOS in two ways: launched in this process (``DBOS`` itself, which
executes and recovers workflows) or, for reading and steering runs without launching,
a client on the same system database (:class:`ClientOps`). Both speak the few
operations the runtime uses, so callers take whichever :meth:`Runtime._ops` returns.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import sqlalchemy as sa

from daytwo.store.wal import HARD_CAP_PAGES, attach_checkpointer, wal_file

if TYPE_CHECKING:
    from dbos import DBOSConfig

__all__ = [
    "APP_VERSION",
    "GROUP_WINDOW_S",
    "QUEUE_NAME",
    "ClientOps",
    "checkpoint_group",
    "checkpointed_step",
    "dbos_config",
    "open_client",
    "prepare_outcomes",
    "reenqueue_for_recovery",
    "sqlite_system_engine",
    "workflow_statuses",
]

T = TypeVar("T")

QUEUE_NAME = "daytwo-runs"
APP_VERSION = "daytwo-runtime-1"


def sqlite_system_engine(url: str, *, synchronous: str = "NORMAL") -> sa.Engine:
    """A DBOS system-database engine on SQLite: WAL journal, IMMEDIATE writers, and (on
    a file) the WAL checkpointed by a background thread, as the store's is."""
    from sqlalchemy import event

    Path(sa.engine.make_url(url).database or ".").expanduser().parent.mkdir(
        parents=True, exist_ok=True
    )
    engine = sa.create_engine(url)
    background = wal_file(url) is not None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")
        dbapi_conn.execute("PRAGMA cache_size=-16000")
        dbapi_conn.execute("PRAGMA temp_store=MEMORY")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")
        if background:
            # As the store's: a background thread checkpoints the WAL, so a step's
            # checkpoint commit does not copy 1,000 pages now and then (issue 16).
            dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={HARD_CAP_PAGES}")

    attach_checkpointer(engine, name="daytwo-dbos-wal-checkpoint")
    return engine


def dbos_config(url: str, schema: str, executor_id: str, synchronous: str) -> DBOSConfig:
    """The configuration DBOS is launched with in this process."""
    config: DBOSConfig = {
        "name": "daytwo",
        "system_database_url": url,
        "application_version": APP_VERSION,
        "executor_id": executor_id,
        "log_level": "WARNING",
        "dbos_system_schema": schema,
        "notification_listener_polling_interval_sec": 0.05,
    }
    if sa.engine.make_url(url).get_backend_name() == "sqlite":
        config["system_database_engine"] = sqlite_system_engine(url, synchronous=synchronous)
    return config


class ClientOps:
    """The DBOS operations the runtime needs, through a DBOSClient (no launch, no recovery)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_workflow_status(self, run_id: str) -> Any:
        try:
            return self.client.retrieve_workflow(run_id).get_status()
        except Exception:
            return None

    def list_workflow_steps(self, run_id: str) -> list[Any]:
        steps: list[Any] = self.client.list_workflow_steps(run_id)
        return steps

    def cancel_workflow(self, run_id: str) -> None:
        self.client.cancel_workflow(run_id)

    def resume_workflow(self, run_id: str) -> None:
        self.client.resume_workflow(run_id)

    def fork_workflow(self, run_id: str, start_step: int) -> None:
        # The new workflow's id comes from the caller's SetWorkflowID, as with DBOS.
        self.client.fork_workflow(run_id, start_step)

    def send(self, run_id: str, message: Any, topic: str, *, idempotency_key: str) -> None:
        self.client.send(run_id, message, topic, idempotency_key)


def open_client(url: str, schema: str, synchronous: str) -> ClientOps:
    """A client on the system database at ``url`` (its tables made when missing)."""
    from dbos import DBOS, DBOSClient

    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        Path(parsed.database or ".").expanduser().parent.mkdir(parents=True, exist_ok=True)
    # A client does not create the DBOS tables; make sure they exist.
    DBOS.migrate(url, schema=schema)
    if parsed.get_backend_name() == "sqlite":
        client = DBOSClient(
            system_database_engine=sqlite_system_engine(url, synchronous=synchronous),
            dbos_system_schema=schema,
        )
    else:
        client = DBOSClient(system_database_url=url, dbos_system_schema=schema)
    return ClientOps(client)


def workflow_statuses(ids: list[str]) -> list[Any]:
    """DBOS's status records of these workflows (DBOS launched here)."""
    from dbos import DBOS

    statuses: list[Any] = DBOS.list_workflows(workflow_ids=ids, load_input=False, load_output=False)
    return statuses


def reenqueue_for_recovery(run_id: str, dead_executor: str) -> bool:
    """Hand a pending workflow of a stopped executor back to its queue (DBOS's recovery).

    Guarded by the dead executor's id: once a live process dequeued the workflow its
    row names that process, so a second sweeper's call changes nothing.
    """
    from dbos._dbos import _get_dbos_instance
    from dbos._utils import INTERNAL_QUEUE_NAME

    sys_db = _get_dbos_instance()._sys_db
    return bool(sys_db.reenqueue_for_recovery(run_id, [dead_executor], INTERNAL_QUEUE_NAME))


# -- step checkpoints --------------------------------------------------------------
#
# ``DBOS.run_step`` costs two round trips through SQLAlchemy Core per step (a read of
# the workflow's status and the step's row; then a write transaction: an ownership
# ``UPDATE ... RETURNING`` and an ``INSERT ... ON CONFLICT ... RETURNING``), and most of
# that time is statement building and caching in Python, not SQLite (a profile of the
# 10-step chain: 8 % of a run in sqlite3, 60 % in DBOS's step recording). On SQLite the
# runtime records its steps itself, in the same rows and with the same checks, through
# prepared statements on a pooled connection of DBOS's own engine:
#
# - before the step, one read (no lock, WAL): the workflow's status (a cancelled
#   workflow runs no further step) and the step's recorded outcome (replayed, its
#   recorded name checked, when there is one) -- DBOS's ``check_operation_execution``.
#   The read is skipped for the operation right after a step this thread has just
#   recorded (or held for its group, below), when the workflow was seen owned and not
#   cancelled at most :data:`GROUP_WINDOW_S` before: the last write transaction read
#   that under the write lock (a cancel clears the owner and sets the status), and a
#   row for the next function id cannot exist when the row before it was missing (an
#   execution, a replay and a fork record a workflow's steps in order; another executor
#   that took over meanwhile fails this one's next write on its owner check). So a
#   step never starts more than that window after the workflow was last seen live;
# - after it, ONE write transaction: the step's row is inserted, then the workflow's
#   ``owner_xid`` is read under the write lock (BEGIN IMMEDIATE: no other writer can
#   change it until the commit) and the transaction is rolled back unless this execution
#   still owns the workflow (a cancel clears the owner, a takeover by another executor
#   changes it) -- DBOS's ``record_operation_result``, as DBOS does it, because
#   ownership can move at any moment of an execution, not only at its start.
#
# Independent steps (a "wave" of the plan: no edge between them, as LangGraph runs a
# superstep) are checkpointed as one unit inside :func:`checkpoint_group`: each step
# still gets its own row (its name, function id and outcome, so listings, forks and
# replays see steps as before), but the rows are written together, in one transaction,
# when the group ends -- or as soon as the group has held rows for longer than
# :data:`GROUP_WINDOW_S`, so slow steps are still recorded one by one. Rows are
# always written as a prefix of the workflow's operations, so a replay finds the group's
# first steps recorded and runs the rest.
#
# A step's outcome is acknowledged (shown, used by a dependent step, part of the run's
# result) only after its row is committed: a crash loses at most the step in flight,
# or the steps of a group not yet written (at most the window's worth of independent
# steps, none of which another step used yet), run again on recovery under the same
# idempotency keys, as with DBOS's own steps. Function ids come from DBOS's workflow
# context (as ``DBOS.run_step`` takes them), so checkpoints written before or after this
# change replay alike, and DBOS's other operations in the workflow (recv) interleave as
# before. It reads DBOS internals (pinned to dbos 3.4 in pyproject.toml); a Postgres
# system database keeps ``DBOS.run_step``, one step at a time.

GROUP_WINDOW_S = 0.02
"""How long a group may hold finished steps' rows, and a step may start after the
workflow was last seen live, without a write or a read of the system database."""

_CHECK = (
    "SELECT ws.status, oo.function_name, oo.output, oo.error, oo.serialization "
    "FROM {ws} AS ws LEFT JOIN {oo} AS oo "
    "ON oo.workflow_uuid = ws.workflow_uuid AND oo.function_id = ? "
    "WHERE ws.workflow_uuid = ?"
)
_RECORD = (
    "INSERT INTO {oo} (workflow_uuid, function_id, function_name, output, error, "
    "started_at_epoch_ms, completed_at_epoch_ms, serialization, application_name) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (workflow_uuid, function_id) DO NOTHING"
)
_OWNER = "SELECT owner_xid, status FROM {ws} WHERE workflow_uuid = ?"

_statements: dict[int, tuple[str, str, str]] = {}

_Row = tuple[str, int, str, str | None, None, int, int, str | None, str | None]


class _Thread(threading.local):
    """This thread's workflow execution, as its checkpoints see it."""

    next: tuple[str, str, int] | None = None
    """(workflow id, owner, function id) of the operation known unrecorded and owned."""
    live_at: float = 0.0
    """When the workflow was last seen owned and not cancelled (``time.monotonic()``)."""
    grouping: bool = False
    """Inside :func:`checkpoint_group`: finished steps' rows are held in ``held``."""
    held: list[_Row]
    owner: str | None = None
    """The owner the held rows are written under."""

    def __init__(self) -> None:
        self.held = []


_thread = _Thread()


def _sql(sys_db: Any) -> tuple[str, str, str]:
    """The three statements on this system database's tables (built once per database)."""
    found = _statements.get(id(sys_db))
    if found is None:
        # SQLite has no schemas: DBOS's tables are addressed by their names alone.
        quote = sys_db.engine.dialect.identifier_preparer.quote
        names = {
            "ws": quote(sys_db.tables.workflow_status.name),
            "oo": quote(sys_db.tables.operation_outputs.name),
        }
        found = (_CHECK.format(**names), _RECORD.format(**names), _OWNER.format(**names))
        _statements.clear()  # one launched DBOS per process
        _statements[id(sys_db)] = found
    return found


@contextmanager
def checkpoint_group() -> Iterator[None]:
    """Checkpoint the workflow's steps run inside as one unit (see above).

    The rows still held are written when the block ends, also when it raises (the steps
    that finished did finish; a write the workflow may no longer make is dropped, and
    those steps run again on recovery). Nested groups are one group.
    """
    if _thread.grouping:
        yield
        return
    _thread.grouping = True
    try:
        yield
    except BaseException:
        with suppress(Exception):
            _flush()
        raise
    else:
        _flush()
    finally:
        _thread.grouping = False
        _thread.held = []


def _flush() -> None:
    """Write the held rows (one transaction), if any."""
    if not _thread.held:
        return
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    rows, _thread.held = _thread.held, []
    _, record, owner = _sql(sys_db)
    _write(sys_db, record, owner, _thread.owner, rows)


def checkpointed_step(name: str, fn: Callable[[], T], *, grouped: bool = False) -> T:
    """Run ``fn`` as the workflow's next durable step named ``name`` (see above).

    ``grouped``: a step of the group open in this thread (:func:`checkpoint_group`),
    independent of the group's other steps: its row may be held for the group's write.
    Any other step first writes the rows held (its inputs may be their outputs).
    Outside a workflow ``fn`` just runs, as with ``DBOS.run_step``.
    """
    from dbos import DBOS
    from dbos._context import EnterDBOSStepCtx, get_local_dbos_context
    from dbos._dbos import _get_dbos_instance
    from dbos._error import DBOSWorkflowCancelledError
    from dbos._serialization import serialize_exception, serialize_value

    dbos = _get_dbos_instance()
    sys_db = dbos._sys_db
    if not sys_db._is_sqlite:
        result: T = DBOS.run_step({"name": name}, fn)
        return result
    ctx = get_local_dbos_context()
    if ctx is None or not ctx.is_workflow():
        return fn()
    step_ctx = ctx.snapshot_step_ctx()
    workflow_id, function_id = step_ctx.workflow_id, step_ctx.function_id
    owner_xid = step_ctx.owner_xid
    check, record, owner = _sql(sys_db)
    local = _thread
    follows = owner_xid is not None and local.next == (workflow_id, owner_xid, function_id)
    local.next = None
    hold = grouped and local.grouping
    if local.held and (
        not hold or not follows or time.monotonic() - local.live_at > GROUP_WINDOW_S
    ):
        _flush()  # not a step of the group, not its next operation, or held too long
    fresh = follows and time.monotonic() - local.live_at <= GROUP_WINDOW_S
    started = int(time.time() * 1000)
    if not fresh:
        with _connection(sys_db.engine) as conn:
            row = conn.execute(check, (function_id, workflow_id)).fetchone()
    with EnterDBOSStepCtx({"name": name, "operationType": "step"}, step_ctx):
        if not fresh:
            recorded = _recorded(dbos, workflow_id, function_id, name, row)
            if recorded is not _NOTHING:
                return cast("T", recorded)
            local.live_at = time.monotonic()  # read just now: not cancelled
        try:
            output = fn()
        except DBOSWorkflowCancelledError:
            raise  # preempted by a cancel: nothing recorded, the step runs again on resume
        except Exception as error:
            # A step that raises (the runtime's steps return failures instead): DBOS
            # records the error as its own steps do, and replays raise it again.
            _flush()
            error_s, serialization = serialize_exception(error, None, dbos._serializer)
            sys_db.record_operation_result(
                {
                    "workflow_uuid": workflow_id,
                    "function_id": function_id,
                    "function_name": name,
                    "output": None,
                    "error": error_s,
                    "serialization": serialization,
                    "started_at_epoch_ms": started,
                    "child_workflow_id": None,
                }
            )
            raise
        serialized, serialization = serialize_value(output, None, dbos._serializer)
        row_out: _Row = (
            workflow_id,
            function_id,
            name,
            serialized,
            None,
            started,
            int(time.time() * 1000),
            serialization,
            sys_db.app_name,
        )
        if owner_xid is None:
            _write(sys_db, record, owner, None, [row_out])
            return output
        local.held.append(row_out)
        local.owner = owner_xid
        if not hold or time.monotonic() - local.live_at > GROUP_WINDOW_S:
            _flush()
        local.next = (workflow_id, owner_xid, function_id + 1)
        return output


@contextmanager
def _connection(engine: sa.Engine) -> Iterator[sqlite3.Connection]:
    """A pooled connection of DBOS's SQLite engine (its pragmas, IMMEDIATE writers)."""
    pooled = engine.raw_connection()
    try:
        conn = pooled.driver_connection
        assert isinstance(conn, sqlite3.Connection)
        yield conn
    finally:
        pooled.close()


class _Nothing:
    pass


_NOTHING = _Nothing()


def _recorded(dbos: Any, workflow_id: str, function_id: int, name: str, row: Any) -> Any:
    """The step's recorded outcome (returned, or raised when it was an error), else _NOTHING."""
    from dbos._error import (
        DBOSException,
        DBOSUnexpectedStepError,
        DBOSWorkflowCancelledError,
    )
    from dbos._serialization import deserialize_exception, deserialize_value

    if row is None:
        raise DBOSException(f"workflow {workflow_id} does not exist")
    status, recorded_name, output, error, serialization = row
    if status == "CANCELLED":
        raise DBOSWorkflowCancelledError(f"Workflow {workflow_id} is cancelled. Aborting function.")
    if recorded_name is None:
        return _NOTHING
    if recorded_name != name:
        raise DBOSUnexpectedStepError(workflow_id, function_id, name, recorded_name)
    if error is not None:
        raise deserialize_exception(error, serialization, dbos._serializer)
    if output is None:
        raise DBOSException(f"step {function_id} of workflow {workflow_id} has no outcome")
    return deserialize_value(output, serialization, dbos._serializer)


def _write(sys_db: Any, record: str, owner: str, owner_xid: str | None, rows: list[_Row]) -> None:
    """Insert steps' rows in one write transaction, if this execution owns the workflow.

    When it does (and the workflow is not cancelled), the commit is when the workflow was
    last seen live (``_thread.live_at``)."""
    from dbos._error import DBOSStepNondeterminismError, DBOSWorkflowConflictIDError

    workflow_id = rows[0][0]
    with _connection(sys_db.engine) as conn:
        try:
            # The write lock first: the owner read below is then the owner at commit.
            conn.execute("BEGIN IMMEDIATE")
            inserted = conn.executemany(record, rows).rowcount
            live = False
            if owner_xid is not None:
                current = conn.execute(owner, (workflow_id,)).fetchone()
                if current is None or current[0] != owner_xid:
                    raise DBOSWorkflowConflictIDError(workflow_id)
                live = current[1] != "CANCELLED"
            if inserted != len(rows):
                raise DBOSStepNondeterminismError(workflow_id, rows[0][1])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
    # Not seen live (a cancelled status under this owner): the next step reads first.
    _thread.live_at = time.monotonic() if live else -math.inf


# -- a workflow's outcome ----------------------------------------------------------
#
# DBOS ends every workflow with one more write transaction on SQLite (its
# ``_update_workflow_outcome_in_transaction``: the status UPDATE, guarded by PENDING and
# the execution's owner, then the output's upsert when the UPDATE landed), built through
# SQLAlchemy Core like the step rows were. On SQLite the runtime makes that method the
# same two statements, prepared, on a pooled connection of DBOS's engine, in one
# BEGIN IMMEDIATE transaction: the same rows, the same guard, the same "now" (DBOS's
# own expression, compiled once). Durability is unchanged: the outcome is committed
# before the workflow's result is returned to anyone.

_OUTCOME = (
    "UPDATE {ws} SET status = ?, deduplication_id = NULL, owner_xid = NULL, "
    "updated_at = {now}, completed_at = {now} "
    "WHERE workflow_uuid = ? AND status = 'PENDING'"
)
_OUTPUT = (
    "INSERT INTO {wo} (workflow_uuid, output, error) VALUES (?, ?, ?) "
    "ON CONFLICT (workflow_uuid) DO UPDATE SET output = excluded.output, error = excluded.error"
)


def prepare_outcomes() -> bool:
    """Write workflows' outcomes on the launched DBOS's SQLite system database with
    prepared statements (see above); whether it does (not on PostgreSQL, nor on a
    sharded layout)."""
    from dbos._dbos import _get_dbos_instance

    sys_db = _get_dbos_instance()._sys_db
    if not getattr(sys_db, "_is_sqlite", False) or sys_db._wf_values("probe") != {}:
        return False
    dialect = sys_db.engine.dialect
    quote = dialect.identifier_preparer.quote
    now = str(sys_db._now_ms_sql().compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    update = _OUTCOME.format(ws=quote(sys_db.tables.workflow_status.name), now=now)
    store = _OUTPUT.format(wo=quote(sys_db.tables.workflow_output.name))

    def outcome(
        workflow_id: str,
        status: str,
        *,
        output: str | None,
        error: str | None,
        owner_xid: str | None,
    ) -> bool:
        with _connection(sys_db.engine) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                if owner_xid is None:
                    landed = conn.execute(update, (status, workflow_id)).rowcount
                else:
                    landed = conn.execute(
                        update + " AND owner_xid = ?", (status, workflow_id, owner_xid)
                    ).rowcount
                if landed == 0:
                    conn.rollback()  # not this execution's to write: no orphan output
                    return False
                conn.execute(store, (workflow_id, output, error))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return True

    # The instance's method, replaced (DBOS calls it for every outcome on SQLite).
    setattr(sys_db, "_update_workflow_outcome_in_transaction", outcome)  # noqa: B010
    return True
