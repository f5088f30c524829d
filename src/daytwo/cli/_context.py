"""Per-invocation state of the CLI: settings and store, loaded once, lazily."""

from __future__ import annotations

from dataclasses import dataclass

from daytwo.settings import Settings, load_settings
from daytwo.store import Store

__all__ = ["State", "state"]


@dataclass
class State:
    """What one CLI invocation has loaded so far."""

    debug: bool = False
    _settings: Settings | None = None
    _store: Store | None = None

    def settings(self) -> Settings:
        """The validated settings (ConfigError on a bad setting)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def store(self, *, check_schema: bool = True, audit: bool = True) -> Store:
        """The system of record; by default refuses a schema older than the code.

        With ``audit`` (the default), audit records this command appends are signed and
        checkpointed with the key in the data directory, at the settings' cadence (and a
        key file that is not the pinned one is refused).
        """
        if self._store is None:
            self._store = Store.from_settings(self.settings())
            if audit:
                from daytwo.tracing.audit import configure_audit

                configure_audit(self.settings())
        if check_schema:
            self._store.check_schema()
        return self._store

    def reset(self) -> None:
        """Forget what was loaded (tests run several invocations in one process)."""
        if self._store is not None:
            from daytwo.tracing.audit import reset_audit_defaults

            self._store.dispose()
            reset_audit_defaults()
        self._settings = None
        self._store = None


state = State()
