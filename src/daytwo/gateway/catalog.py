"""The tool catalog in the database: register (pinned by hash), list, resolve versions."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from daytwo.exceptions import ConflictError, InputError, ToolNotFound
from daytwo.gateway.contracts import ToolDefinition, definition_hash, parse_semver
from daytwo.store import Store, new_id
from daytwo.store.tables.gateway import GatewayTool

__all__ = ["Catalog", "ToolRecord", "parse_tool_ref", "unknown_tool"]


def unknown_tool(name: str) -> ToolNotFound:
    """The answer for a tool that does not exist (or that the caller may not know of)."""
    return ToolNotFound(
        f"unknown tool {name!r}", hint="see `daytwo tools list` or register it first"
    )


@dataclass(frozen=True)
class ToolRecord:
    """One registered tool version."""

    id: str
    name: str
    version: str
    major: int
    capability: str
    definition_hash: str
    definition: ToolDefinition
    created_at: datetime

    def as_dict(self, *, full: bool = False) -> dict[str, Any]:
        """JSON-ready form (``full`` adds the whole definition)."""
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "capability": self.capability,
            "backend": self.definition.backend.type,
            "drift_policy": self.definition.policy.drift,
            "hash": self.definition_hash,
            "created_at": self.created_at.isoformat(),
        }
        if full:
            out["definition"] = self.definition.model_dump(mode="json")
        return out


def _record(row: GatewayTool) -> ToolRecord:
    return ToolRecord(
        id=row.id,
        name=row.name,
        version=row.version,
        major=row.major,
        capability=row.capability,
        definition_hash=row.definition_hash,
        definition=ToolDefinition.model_validate(row.definition),
        created_at=row.created_at,
    )


def parse_tool_ref(ref: str, version: str | None = None) -> tuple[str, str | None]:
    """``name@1`` / ``name@1.2.0`` / ``name`` -> (name, version selector)."""
    if "@" in ref:
        name, _, sel = ref.partition("@")
        if version is not None and version != sel:
            raise InputError(
                f"tool {ref!r} names version {sel} but version={version!r} was passed",
                hint="give the version once",
            )
        return name, sel or None
    return ref, version


def _sort_key(record: ToolRecord) -> tuple[int, int, int]:
    return parse_semver(record.version.split("-")[0])


class Catalog:
    """Registered tools, with a short-lived in-memory cache for the call path."""

    def __init__(self, store: Store, *, cache_ttl_s: float = 5.0) -> None:
        self.store = store
        self.cache_ttl_s = cache_ttl_s
        self._versions: dict[str, tuple[float, list[ToolRecord]]] = {}
        self._lock = threading.Lock()

    def register_many(self, definitions: list[ToolDefinition]) -> list[ToolRecord]:
        """Register every definition in one transaction (all or nothing)."""
        out: list[ToolRecord] = []
        with self.store.session(write=True) as s:
            for definition in definitions:
                definition.check_schemas()
                digest = definition_hash(definition)
                row = s.scalar(
                    select(GatewayTool).where(
                        GatewayTool.name == definition.name,
                        GatewayTool.version == definition.version,
                    )
                )
                if row is not None:
                    if row.definition_hash != digest:
                        raise ConflictError(
                            f"tool {definition.name} {definition.version} is already registered "
                            "with a different definition",
                            hint="bump the version (definitions are pinned by hash)",
                        )
                    out.append(_record(row))
                    continue
                row = GatewayTool(
                    id=new_id(),
                    name=definition.name,
                    version=definition.version,
                    major=definition.major,
                    capability=definition.capability,
                    definition_hash=digest,
                    definition=definition.model_dump(mode="json"),
                )
                s.add(row)
                s.flush()
                out.append(_record(row))
        with self._lock:
            for definition in definitions:
                self._versions.pop(definition.name, None)
        return out

    def list_tools(
        self, capability: str | None = None, major: int | None = None
    ) -> list[ToolRecord]:
        """Every registered version, filtered, ordered by name then version."""
        with self.store.session() as s:
            q = select(GatewayTool)
            if capability is not None:
                q = q.where(GatewayTool.capability == capability)
            if major is not None:
                q = q.where(GatewayTool.major == major)
            records = [_record(r) for r in s.scalars(q)]
        return sorted(records, key=lambda r: (r.name, _sort_key(r)))

    def names(self, capability: str | None = None) -> list[str]:
        """The registered tools' names (of one capability), sorted: what ``list_tools``
        names, read without loading and parsing every version's definition (the runtime
        checks a spec against them at every run's start)."""
        q = select(GatewayTool.name).distinct()
        if capability is not None:
            q = q.where(GatewayTool.capability == capability)
        with self.store.session() as s:
            found = list(s.scalars(q))
        return sorted(found)  # as list_tools sorts them (not the database's collation)

    def versions(self, name: str) -> list[ToolRecord]:
        """Versions of ``name``, oldest first (cached for ``cache_ttl_s``)."""
        now = time.monotonic()
        with self._lock:
            hit = self._versions.get(name)
            if hit is not None and now - hit[0] < self.cache_ttl_s:
                return hit[1]
        with self.store.session() as s:
            rows = list(s.scalars(select(GatewayTool).where(GatewayTool.name == name)))
            records = sorted((_record(r) for r in rows), key=_sort_key)
        with self._lock:
            self._versions[name] = (now, records)
        return records

    def resolve(self, ref: str, version: str | None = None) -> ToolRecord:
        """The version of a tool that a call means: exact, latest of a major, or latest."""
        name, sel = parse_tool_ref(ref, version)
        records = self.versions(name)
        if not records:
            raise unknown_tool(name)
        if sel is None:
            return records[-1]
        sel = sel.lstrip("v^~")
        if sel.isdigit():
            matching = [r for r in records if r.major == int(sel)]
            if matching:
                return matching[-1]
        else:
            for r in records:
                if r.version == sel:
                    return r
        known = ", ".join(r.version for r in records)
        raise ToolNotFound(
            f"tool {name!r} has no version {sel!r}", hint=f"registered versions: {known}"
        )
