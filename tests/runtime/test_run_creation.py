"""A run's creation: the version it records is resolved in the transaction that inserts it."""

from __future__ import annotations

import pytest

from daytwo.exceptions import NotFoundError
from daytwo.runtime import PythonTools, Runtime, load_spec
from daytwo.store import Store


def _spec(name: str, tool: str) -> dict[str, object]:
    return {"name": name, "steps": [{"id": "a", "kind": "tool", "tool": tool}]}


def test_a_promotion_by_another_process_is_seen_by_the_next_run(
    runtime: Runtime, tools: PythonTools
) -> None:
    tools.add("one", lambda idempotency_key: 1)
    tools.add("two", lambda idempotency_key: 2)
    runtime.registry.register(load_spec(_spec("v", "one")))
    runtime.registry.register(load_spec(_spec("v", "two")))
    assert runtime.start("v", {})["version"] == 2  # no prod alias: the latest
    # The CLI promotes and rolls back through its own store: nothing cached here.
    other = Store(runtime.store.url)
    try:
        from daytwo.runtime.registry import AgentRegistry

        cli = AgentRegistry(other)
        cli.promote("v", 1)
        assert runtime.start("v", {})["version"] == 1
        cli.promote("v", 2)
        assert runtime.start("v", {})["version"] == 2
        cli.rollback("v")
        assert runtime.start("v", {})["version"] == 1
        cli.promote("v", 2, alias="canary")
        assert runtime.start("v", {}, version="canary")["version"] == 2
        assert runtime.start("v", {}, version="1")["version"] == 1
        assert runtime.start("v", {}, version=2)["version"] == 2
    finally:
        other.dispose()


def test_a_version_that_does_not_resolve_writes_no_run(
    runtime: Runtime, tools: PythonTools
) -> None:
    tools.add("one", lambda idempotency_key: 1)
    runtime.registry.register(load_spec(_spec("w", "one")))
    with pytest.raises(NotFoundError, match=r"agent 'w' has no version 7") as exc:
        runtime.start("w", {}, version=7)
    assert "versions: 1" in (exc.value.hint or "")
    with pytest.raises(NotFoundError, match=r"agent 'w' has no alias 'beta'"):
        runtime.start("w", {}, version="beta")
    with pytest.raises(NotFoundError, match="no agent named 'ghost'"):
        runtime.start("ghost", {}, version="prod")
    assert runtime.list_runs() == []
