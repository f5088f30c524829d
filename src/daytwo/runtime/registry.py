"""Agent versions in the system of record: register, list, show, diff, promote, rollback."""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa
import yaml
from sqlalchemy.orm import Session

from daytwo.exceptions import ConflictError, NotFoundError
from daytwo.runtime.loader import load_spec
from daytwo.runtime.spec import AgentSpec
from daytwo.store import Store, new_id
from daytwo.store.tables.runtime import AgentPromotion, AgentVersion

__all__ = ["AgentInfo", "AgentRegistry"]


@dataclass(frozen=True)
class AgentInfo:
    """One registered version."""

    name: str
    version: int
    spec_hash: str
    created_at: datetime
    aliases: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able view."""
        return {
            "name": self.name,
            "version": self.version,
            "spec_hash": self.spec_hash,
            "created_at": self.created_at.isoformat(),
            "aliases": list(self.aliases),
        }


def _spec_json(spec: AgentSpec) -> dict[str, Any]:
    data: dict[str, Any] = spec.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    return data


def spec_hash(spec: AgentSpec) -> str:
    """SHA-256 of the canonical JSON of the spec."""
    import rfc8785

    return hashlib.sha256(rfc8785.dumps(_spec_json(spec))).hexdigest()


# The resolving statements, built once (they run before every run): the agent's
# latest version beside an alias's current version (its last promotion or rollback)
# or the version asked for.
_LATEST = (
    sa.select(sa.func.max(AgentVersion.version))
    .where(AgentVersion.name == sa.bindparam("agent"))
    .scalar_subquery()
)
_BY_ALIAS = sa.select(
    _LATEST,
    sa.select(AgentPromotion.version)
    .where(
        AgentPromotion.name == sa.bindparam("agent"),
        AgentPromotion.alias == sa.bindparam("alias"),
    )
    .order_by(AgentPromotion.id.desc())
    .limit(1)
    .scalar_subquery(),
)
_BY_NUMBER = sa.select(
    _LATEST,
    sa.select(AgentVersion.version)
    .where(
        AgentVersion.name == sa.bindparam("agent"), AgentVersion.version == sa.bindparam("number")
    )
    .scalar_subquery(),
)


class AgentRegistry:
    """Versions count up per agent name; aliases (``prod``) move by promotion."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, int], AgentSpec] = {}

    def register(self, spec: AgentSpec, source: str = "") -> tuple[AgentInfo, bool]:
        """Store ``spec`` as the next version; (info, created). Same content → same version."""
        digest = spec_hash(spec)
        with self.store.session(write=True) as s:
            latest = s.scalars(
                sa.select(AgentVersion)
                .where(AgentVersion.name == spec.name)
                .order_by(AgentVersion.version.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.spec_hash == digest:
                return self._info(s, latest), False
            row = AgentVersion(
                id=new_id(),
                name=spec.name,
                version=(latest.version + 1) if latest else 1,
                spec=_spec_json(spec),
                spec_hash=digest,
                source=source,
            )
            s.add(row)
            s.flush()
            return self._info(s, row), True

    def _info(self, s: Any, row: AgentVersion) -> AgentInfo:
        aliases = tuple(
            alias for alias, version in self._aliases(s, row.name).items() if version == row.version
        )
        return AgentInfo(row.name, row.version, row.spec_hash, row.created_at, aliases)

    def _aliases(self, s: Any, name: str) -> dict[str, int]:
        rows = s.scalars(
            sa.select(AgentPromotion).where(AgentPromotion.name == name).order_by(AgentPromotion.id)
        ).all()
        current: dict[str, int] = {}
        for r in rows:
            current[r.alias] = r.version
        return current

    def list(self, name: str | None = None) -> list[AgentInfo]:
        """Every version (of one agent, or of all), newest first per agent."""
        with self.store.session() as s:
            q = sa.select(AgentVersion).order_by(AgentVersion.name, AgentVersion.version.desc())
            if name is not None:
                q = q.where(AgentVersion.name == name)
            rows = s.scalars(q).all()
            if name is not None and not rows:
                raise NotFoundError(f"no agent named {name!r}", hint="daytwo agents register FILE")
            return [self._info(s, r) for r in rows]

    def resolve(self, name: str, version: int | str | None = None) -> int:
        """A version number from a number, an alias (``prod``), or None (prod, else latest)."""
        with self.store.session() as s:
            return self.resolve_in(s, name, version)

    def resolve_in(self, s: Session, name: str, version: int | str | None = None) -> int:
        """:meth:`resolve` in ``s``'s transaction (a run's creation: the version it
        records is the one resolved in the transaction that records it).

        One statement when the version exists: the agent's latest version beside the
        alias's current version (its last promotion or rollback) or the number asked
        for. Not cached: a promotion by another process must be seen at once.
        """
        alias = None
        if version is None:
            alias = "prod"
        elif isinstance(version, str) and not version.isdigit():
            alias = version
        if alias is not None:
            row = s.execute(_BY_ALIAS, {"agent": name, "alias": alias}).one()
        else:
            row = s.execute(_BY_NUMBER, {"agent": name, "number": int(version or 0)}).one()
        newest, found = row
        if found is not None:
            return int(found)
        if newest is not None and version is None:
            return int(newest)
        return self._unresolved(s, name, version)

    def _unresolved(self, s: Session, name: str, version: int | str | None) -> NoReturn:
        """Raise the error saying why ``version`` of ``name`` does not resolve."""
        versions = s.scalars(sa.select(AgentVersion.version).where(AgentVersion.name == name)).all()
        if not versions:
            raise NotFoundError(f"no agent named {name!r}", hint="daytwo agents register FILE")
        if version is None or (isinstance(version, str) and not version.isdigit()):
            aliases = self._aliases(s, name)
            raise NotFoundError(
                f"agent {name!r} has no alias {version or 'prod'!r}",
                hint=f"aliases: {', '.join(sorted(aliases)) or 'none'}; "
                f"promote one with `daytwo agents promote {name} V --to {version or 'prod'}`",
            )
        raise NotFoundError(
            f"agent {name!r} has no version {int(version)}",
            hint=f"versions: {', '.join(map(str, sorted(versions)))}",
        )

    def spec(self, name: str, version: int, session: Session | None = None) -> AgentSpec:
        """The exact spec of one version (read in ``session`` when given; cached:
        versions never change)."""
        key = (name, version)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if session is None:
            with self.store.session() as s:
                return self.spec(name, version, s)
        row = session.scalars(
            sa.select(AgentVersion).where(
                AgentVersion.name == name, AgentVersion.version == version
            )
        ).first()
        if row is None:
            raise NotFoundError(f"agent {name!r} has no version {version}")
        spec = load_spec(row.spec)
        self._cache[key] = spec
        return spec

    def show(self, name: str, version: int | str | None = None) -> dict[str, Any]:
        """Info and spec of one version."""
        number = self.resolve(name, version)
        with self.store.session() as s:
            row = s.scalars(
                sa.select(AgentVersion).where(
                    AgentVersion.name == name, AgentVersion.version == number
                )
            ).one()
            info = self._info(s, row).as_dict()
            info["spec"] = row.spec
        return info

    def diff(self, name: str, v1: int | str, v2: int | str) -> str:
        """Unified diff of two versions' specs (YAML)."""
        a, b = self.resolve(name, v1), self.resolve(name, v2)
        left = yaml.safe_dump(self.show(name, a)["spec"], sort_keys=False)
        right = yaml.safe_dump(self.show(name, b)["spec"], sort_keys=False)
        return "".join(
            difflib.unified_diff(
                left.splitlines(keepends=True),
                right.splitlines(keepends=True),
                fromfile=f"{name}@v{a}",
                tofile=f"{name}@v{b}",
            )
        )

    def promote(self, name: str, version: int | str, alias: str = "prod") -> int:
        """Point ``alias`` at ``version`` (recorded, so it can be rolled back)."""
        number = self.resolve(name, version)
        with self.store.session(write=True) as s:
            s.add(AgentPromotion(name=name, alias=alias, version=number, action="promote"))
        return number

    def rollback(self, name: str, alias: str = "prod") -> tuple[int, int]:
        """Move ``alias`` back to the version it pointed at before; (from, to)."""
        with self.store.session(write=True) as s:
            rows = s.scalars(
                sa.select(AgentPromotion)
                .where(AgentPromotion.name == name, AgentPromotion.alias == alias)
                .order_by(AgentPromotion.id)
            ).all()
            if not rows:
                raise NotFoundError(
                    f"agent {name!r} was never promoted to {alias!r}",
                    hint=f"daytwo agents promote {name} V --to {alias}",
                )
            # Replay the history as a stack: promote pushes, rollback pops.
            stack: list[int] = []
            for r in rows:
                if r.action == "promote":
                    stack.append(r.version)
                elif stack:
                    stack.pop()
            if len(stack) < 2:
                raise ConflictError(
                    f"{name}:{alias} has no earlier version to roll back to",
                    hint="promote another version instead",
                )
            current, previous = stack[-1], stack[-2]
            s.add(AgentPromotion(name=name, alias=alias, version=previous, action="rollback"))
        return current, previous
