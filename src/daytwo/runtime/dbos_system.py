"""The DBOS system database: its engine, its configuration, and the operations on it.

The runtime reaches DBOS in two ways: launched in this process (``DBOS`` itself, which
executes and recovers workflows) or, for reading and steering runs without launching,
a client on the same system database (:class:`ClientOps`). Both speak the few
operations the runtime uses, so callers take whichever :meth:`Runtime._ops` returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from dbos import DBOSConfig

__all__ = [
    "APP_VERSION",
    "QUEUE_NAME",
    "ClientOps",
    "dbos_config",
    "open_client",
    "reenqueue_for_recovery",
    "sqlite_system_engine",
    "workflow_statuses",
]

QUEUE_NAME = "daytwo-runs"
APP_VERSION = "daytwo-runtime-1"


def sqlite_system_engine(url: str, *, synchronous: str = "NORMAL") -> sa.Engine:
    """A DBOS system-database engine on SQLite: WAL journal, IMMEDIATE writers."""
    from sqlalchemy import event

    Path(sa.engine.make_url(url).database or ".").expanduser().parent.mkdir(
        parents=True, exist_ok=True
    )
    engine = sa.create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = "IMMEDIATE"
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute(f"PRAGMA synchronous={synchronous}")
        dbapi_conn.execute("PRAGMA cache_size=-16000")
        dbapi_conn.execute("PRAGMA temp_store=MEMORY")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

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
