"""Learned drift profiles and open drift alerts, shared through the store.

Every gateway process (server workers, run workers, the CLI) judges a tool
version's responses by the same learned profile: the first process to finish the
warm-up stores it, the others load it instead of warming up again, and alerts
another process raised are open here too: before a process raises an alert it asks
the store, so the same drift is alerted once (two processes raising it in the same
instant may still both record it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from daytwo.store import Store
from daytwo.store.tables.gateway import GatewayDriftAlert, GatewayDriftProfile

__all__ = ["StoredProfiles"]


class StoredProfiles:
    """:class:`daytwo.gateway.drift.SharedProfiles` in the system of record."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def load(self, key: str) -> tuple[dict[str, dict[str, Any]] | None, set[tuple[str, str]]]:
        """The stored profile of ``key`` (``tool@version``) and its open alerts."""
        tool, _, version = key.rpartition("@")
        with self.store.session() as s:
            row = s.get(GatewayDriftProfile, key)
            alerts = s.execute(
                select(GatewayDriftAlert.field, GatewayDriftAlert.source, GatewayDriftAlert.kind)
                .where(GatewayDriftAlert.tool == tool, GatewayDriftAlert.version == version)
                .distinct()
            ).all()
            profiles = dict(row.profiles) if row is not None else None
        return profiles, {(f, f"{source}:{kind}") for f, source, kind in alerts}

    def save(self, key: str, profiles: dict[str, dict[str, Any]]) -> None:
        """Store the profile learned for ``key`` unless another process stored one first."""
        try:
            with self.store.session(write=True) as s:
                if s.get(GatewayDriftProfile, key) is None:
                    s.add(GatewayDriftProfile(key=key, profiles=profiles))
        except IntegrityError:
            pass  # stored by another process a moment ago: theirs is as good

    def alerted(self, key: str, name: str, kind: str) -> bool:
        """True when an alert ``kind`` (``source:kind``) on field ``name`` of ``key`` is stored."""
        tool, _, version = key.rpartition("@")
        source, _, what = kind.partition(":")
        with self.store.session() as s:
            found = s.scalar(
                select(GatewayDriftAlert.id)
                .where(
                    GatewayDriftAlert.tool == tool,
                    GatewayDriftAlert.version == version,
                    GatewayDriftAlert.field == name,
                    GatewayDriftAlert.source == source,
                    GatewayDriftAlert.kind == what,
                )
                .limit(1)
            )
        return found is not None
