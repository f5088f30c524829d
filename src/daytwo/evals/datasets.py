"""Golden sets in the system of record: immutable versions, proposals, review, diff.

A set has numbered versions (1, 2, ...). Adding, importing, removing or
accepting cases writes a *new* version; an existing version never changes, so
a run pinned to ``support@3`` is reproducible. Case rows are immutable too:
changing a case writes a new row with the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from daytwo.evals.cases import Case, case_hash, parse_cases_jsonl
from daytwo.exceptions import ConflictError, InputError, NotFoundError
from daytwo.store import Store
from daytwo.store.tables.evals import EvalCase, EvalSet, EvalSetVersion, EvalVersionCase

__all__ = ["GoldenSets", "SetDiff", "StoredCase", "VersionInfo", "parse_set_ref"]


@dataclass(frozen=True)
class StoredCase:
    """A case as stored: its row id, key, status, content and provenance."""

    id: str
    key: str
    status: str
    data: dict[str, Any]
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def case(self) -> Case:
        """The validated case."""
        return Case.model_validate(self.data)


@dataclass(frozen=True)
class VersionInfo:
    """One version of a set."""

    set_name: str
    version: int
    case_count: int
    content_hash: str
    note: str
    created_at: datetime
    changed: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "set": self.set_name,
            "version": self.version,
            "cases": self.case_count,
            "content_hash": self.content_hash,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "changed": self.changed,
        }


@dataclass(frozen=True)
class SetDiff:
    """Keys added, removed and changed between two versions."""

    set_name: str
    old: int
    new: int
    added: list[str]
    removed: list[str]
    changed: list[str]
    unchanged: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly."""
        return {
            "set": self.set_name,
            "old": self.old,
            "new": self.new,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
        }


def parse_set_ref(ref: str) -> tuple[str, int | None]:
    """``name`` or ``name@version`` → (name, version or None for the latest)."""
    name, sep, ver = ref.partition("@")
    if not name.strip():
        raise InputError(f"set reference {ref!r} has no name", hint="write NAME or NAME@VERSION")
    if not sep:
        return name, None
    if ver == "latest":
        return name, None
    if not ver.isdigit() or int(ver) < 1:
        raise InputError(
            f"set reference {ref!r} has an invalid version {ver!r}",
            hint="versions are positive integers: NAME@3 (or NAME for the latest)",
        )
    return name, int(ver)


class GoldenSets:
    """Create, version, import, export, diff and review golden sets."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- lookups ---------------------------------------------------------------------------

    def _set(self, s: Session, name: str) -> EvalSet:
        row = s.scalar(select(EvalSet).where(EvalSet.name == name))
        if row is None:
            known = list(s.scalars(select(EvalSet.name).order_by(EvalSet.name).limit(20)))
            raise NotFoundError(
                f"golden set {name!r} does not exist",
                hint=f"create it with `daytwo eval sets create {name}`"
                + (f" (known sets: {', '.join(known)})" if known else ""),
            )
        return row

    def _version(self, s: Session, st: EvalSet, version: int | None) -> EvalSetVersion | None:
        q = select(EvalSetVersion).where(EvalSetVersion.set_id == st.id)
        if version is None:
            return s.scalar(q.order_by(EvalSetVersion.version.desc()).limit(1))
        row = s.scalar(q.where(EvalSetVersion.version == version))
        if row is None:
            latest = s.scalar(
                select(func.max(EvalSetVersion.version)).where(EvalSetVersion.set_id == st.id)
            )
            raise NotFoundError(
                f"golden set {st.name!r} has no version {version}",
                hint=f"latest version is {latest}" if latest else "the set has no versions yet",
            )
        return row

    def _cases_of(self, s: Session, version: EvalSetVersion | None) -> list[EvalCase]:
        if version is None:
            return []
        return list(
            s.scalars(
                select(EvalCase)
                .join(EvalVersionCase, EvalVersionCase.case_id == EvalCase.id)
                .where(EvalVersionCase.version_id == version.id)
                .order_by(EvalVersionCase.position)
            )
        )

    @staticmethod
    def _info(st: EvalSet, v: EvalSetVersion, changed: bool = True) -> VersionInfo:
        return VersionInfo(
            st.name, v.version, v.case_count, v.content_hash, v.note, v.created_at, changed
        )

    # -- public API ------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Every set name."""
        with self.store.session() as s:
            return list(s.scalars(select(EvalSet.name).order_by(EvalSet.name)))

    def exists(self, name: str) -> bool:
        """True when the set exists."""
        with self.store.session() as s:
            return s.scalar(select(EvalSet.id).where(EvalSet.name == name)) is not None

    def create(self, name: str, description: str = "") -> None:
        """Create an empty set (its first version comes with the first cases)."""
        if not name or "@" in name or len(name) > 200:
            raise InputError(f"invalid set name {name!r}", hint="use 1-200 characters without '@'")
        try:
            with self.store.session(write=True) as s:
                if s.scalar(select(EvalSet.id).where(EvalSet.name == name)) is not None:
                    raise ConflictError(
                        f"golden set {name!r} exists already",
                        hint=f"add cases with `daytwo eval sets add {name} ...`",
                    )
                s.add(EvalSet(name=name, description=description))
        except IntegrityError as exc:
            raise ConflictError(f"golden set {name!r} exists already") from exc

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of the set, oldest first."""
        with self.store.session() as s:
            st = self._set(s, name)
            rows = s.scalars(
                select(EvalSetVersion)
                .where(EvalSetVersion.set_id == st.id)
                .order_by(EvalSetVersion.version)
            )
            return [self._info(st, v) for v in rows]

    def resolve(self, ref: str) -> VersionInfo:
        """The version a ``name[@version]`` reference points at."""
        name, version = parse_set_ref(ref)
        with self.store.session() as s:
            st = self._set(s, name)
            v = self._version(s, st, version)
            if v is None:
                raise NotFoundError(
                    f"golden set {name!r} has no versions yet",
                    hint=f"add cases: `daytwo eval sets import {name} FILE.jsonl`",
                )
            return self._info(st, v)

    def cases(self, name: str, version: int | None = None) -> list[StoredCase]:
        """The cases of a version (latest by default)."""
        with self.store.session() as s:
            st = self._set(s, name)
            return [_stored(c) for c in self._cases_of(s, self._version(s, st, version))]

    def export(self, name: str, version: int | None = None) -> list[dict[str, Any]]:
        """Case contents of a version, ready for JSONL."""
        return [c.data for c in self.cases(name, version)]

    def add(
        self,
        name: str,
        cases: Sequence[Case],
        *,
        note: str = "",
        replace: bool = False,
        remove: Iterable[str] = (),
        provenance: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Write a new version: the latest cases plus ``cases`` (updated by key), minus ``remove``.

        With ``replace`` the new version holds exactly ``cases``. When nothing
        changes no version is written and the latest is returned (``changed`` False).
        """
        try:
            with self.store.session(write=True) as s:
                return self._add(s, name, cases, note, replace, set(remove), provenance or {})
        except IntegrityError as exc:
            raise ConflictError(
                f"golden set {name!r} changed while writing a new version",
                hint="run the command again",
            ) from exc

    def _add(
        self,
        s: Session,
        name: str,
        cases: Sequence[Case],
        note: str,
        replace: bool,
        remove: set[str],
        provenance: dict[str, Any],
    ) -> VersionInfo:
        st = self._set(s, name)
        latest = self._version(s, st, None)
        current = [] if replace else self._cases_of(s, latest)
        by_key: dict[str, EvalCase] = {c.case_key: c for c in current}
        order = [c.case_key for c in current]
        unknown = sorted(remove - set(by_key))
        if unknown:
            raise NotFoundError(
                f"golden set {name!r} has no case {unknown[0]!r}",
                hint="list the keys with `daytwo eval sets export " + name + "`",
            )
        for key in remove:
            del by_key[key]
            order.remove(key)
        for case in cases:
            data = case.content()
            digest = case_hash(data)
            key = data["key"]
            old = by_key.get(key)
            if old is not None and old.content_hash == digest:
                continue
            row = EvalCase(
                set_id=st.id,
                case_key=key,
                content_hash=digest,
                data=data,
                status="accepted",
                provenance=provenance,
            )
            s.add(row)
            if key not in by_key:
                order.append(key)
            by_key[key] = row
        s.flush()
        return self._write_version(s, st, latest, [by_key[k] for k in order], note)

    def _write_version(
        self,
        s: Session,
        st: EvalSet,
        latest: EvalSetVersion | None,
        rows: list[EvalCase],
        note: str,
    ) -> VersionInfo:
        digest = hashlib.sha256(
            "\n".join(sorted(f"{r.case_key}:{r.content_hash}" for r in rows)).encode()
        ).hexdigest()
        if latest is not None and latest.content_hash == digest:
            return self._info(st, latest, changed=False)
        version = EvalSetVersion(
            set_id=st.id,
            version=(latest.version if latest else 0) + 1,
            note=note,
            case_count=len(rows),
            content_hash=digest,
        )
        s.add(version)
        s.flush()
        s.add_all(
            EvalVersionCase(version_id=version.id, case_id=r.id, position=i)
            for i, r in enumerate(rows)
        )
        s.flush()
        return self._info(st, version)

    def import_jsonl(
        self,
        name: str,
        path: Path,
        *,
        create: bool = True,
        replace: bool = False,
        note: str = "",
    ) -> VersionInfo:
        """Import a JSONL file (one case per line) as a new version, creating the set if asked."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise InputError(f"file {path} does not exist", hint="check the path") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read {path}: {exc}", hint="pass a UTF-8 JSONL file") from exc
        cases = parse_cases_jsonl(text, source=str(path))
        if create and not self.exists(name):
            self.create(name)
        return self.add(name, cases, note=note or f"import {path.name}", replace=replace)

    def diff(self, name: str, old: int, new: int | None = None) -> SetDiff:
        """What changed between two versions (``new`` defaults to the latest)."""
        with self.store.session() as s:
            st = self._set(s, name)
            v_old = self._version(s, st, old)
            v_new = self._version(s, st, new)
            if v_old is None or v_new is None:
                raise NotFoundError(f"golden set {name!r} has no versions yet")
            a = {c.case_key: c.content_hash for c in self._cases_of(s, v_old)}
            b = {c.case_key: c.content_hash for c in self._cases_of(s, v_new)}
            return SetDiff(
                name,
                v_old.version,
                v_new.version,
                added=sorted(set(b) - set(a)),
                removed=sorted(set(a) - set(b)),
                changed=sorted(k for k in set(a) & set(b) if a[k] != b[k]),
                unchanged=sum(1 for k in set(a) & set(b) if a[k] == b[k]),
            )

    # -- proposals and review --------------------------------------------------------------

    def propose(
        self, name: str, cases: Sequence[Case], provenance: dict[str, Any]
    ) -> list[StoredCase]:
        """Store cases as *proposed* (not in any version until accepted)."""
        with self.store.session(write=True) as s:
            st = self._set(s, name)
            rows = []
            for case in cases:
                data = case.content()
                row = EvalCase(
                    set_id=st.id,
                    case_key=data["key"],
                    content_hash=case_hash(data),
                    data=data,
                    status="proposed",
                    provenance=provenance,
                )
                s.add(row)
                rows.append(row)
            s.flush()
            return [_stored(r) for r in rows]

    def proposed(self, name: str) -> list[StoredCase]:
        """Cases awaiting review."""
        with self.store.session() as s:
            st = self._set(s, name)
            rows = s.scalars(
                select(EvalCase)
                .where(EvalCase.set_id == st.id, EvalCase.status == "proposed")
                .order_by(EvalCase.created_at, EvalCase.id)
            )
            return [_stored(r) for r in rows]

    def all_inputs(self, name: str) -> list[str]:
        """Inputs of every case ever stored in the set (any status): the dedup universe."""
        with self.store.session() as s:
            st = self._set(s, name)
            return [
                str(d.get("input", ""))
                for d in s.scalars(select(EvalCase.data).where(EvalCase.set_id == st.id))
            ]

    def review(
        self,
        name: str,
        *,
        accept: Iterable[str] = (),
        reject: Iterable[str] = (),
        note: str = "",
        reason: str = "",
        reviewer: str = "",
    ) -> tuple[VersionInfo | None, int, int]:
        """Accept and reject proposed cases by id (or id prefix); accepted ones form a new version.

        ``reason`` and ``reviewer`` (when given) are kept on each decided case.
        Returns (new version or None, accepted count, rejected count).
        """
        accept, reject = list(accept), list(reject)
        with self.store.session(write=True) as s:
            st = self._set(s, name)
            pending = list(
                s.scalars(
                    select(EvalCase).where(EvalCase.set_id == st.id, EvalCase.status == "proposed")
                )
            )
            chosen_a = _pick(pending, accept)
            chosen_r = _pick(pending, reject)
            both = {r.id for r in chosen_a} & {r.id for r in chosen_r}
            if both:
                raise InputError(
                    f"case {sorted(both)[0]} is both accepted and rejected",
                    hint="name each proposed case once",
                )
            for row in chosen_r:
                row.status = "rejected"
            if reason or reviewer:
                for action, rows in (("accept", chosen_a), ("reject", chosen_r)):
                    for row in rows:
                        decision = {"action": action, "reason": reason, "reviewer": reviewer}
                        row.provenance = {**(row.provenance or {}), "review": decision}
            if not chosen_a:
                return None, 0, len(chosen_r)
            latest = self._version(s, st, None)
            current = self._cases_of(s, latest)
            by_key = {c.case_key: c for c in current}
            order = [c.case_key for c in current]
            for row in chosen_a:
                row.status = "accepted"
                if row.case_key not in by_key:
                    order.append(row.case_key)
                by_key[row.case_key] = row
            s.flush()
            info = self._write_version(
                s, st, latest, [by_key[k] for k in order], note or f"accepted {len(chosen_a)}"
            )
            return info, len(chosen_a), len(chosen_r)

    def decide(
        self,
        name: str,
        case_id: str,
        action: str,
        *,
        reason: str = "",
        reviewer: str = "",
        edited: Case | None = None,
    ) -> tuple[StoredCase, VersionInfo | None]:
        """Accept, edit or reject one proposed case, keeping who decided and why.

        ``accept`` adds the case as proposed to a new version; ``edit`` adds ``edited``
        instead (same key; the proposal is kept, marked ``edited``); ``reject`` only
        marks it. A reason is required to reject or edit. One write transaction: on
        any error nothing changes. Returns the decided case and the new version.
        """
        if action not in ("accept", "edit", "reject"):
            raise InputError(f"unknown review action {action!r}", hint="use accept, edit or reject")
        reason = reason.strip()
        if action != "accept" and not reason:
            raise InputError(
                f"a reason is required to {action} a proposed case",
                hint="say what is wrong with it (it is kept with the decision)",
            )
        if (action == "edit") != (edited is not None):
            raise InputError(
                "an edited case goes with action 'edit' only",
                hint="send the corrected case with action edit, or no case to accept as is",
            )
        if not case_id or case_id == "all":
            raise InputError("name one proposed case by id or key", hint="list them first")
        decision = {"action": action, "reason": reason, "reviewer": reviewer}
        with self.store.session(write=True) as s:
            st = self._set(s, name)
            pending = list(
                s.scalars(
                    select(EvalCase).where(EvalCase.set_id == st.id, EvalCase.status == "proposed")
                )
            )
            row = _pick(pending, [case_id])[0]
            row.provenance = {**(row.provenance or {}), "review": decision}
            if action == "reject":
                row.status = "rejected"
                s.flush()
                return _stored(row), None
            chosen = row
            if edited is not None:
                row.status = "edited"
                data = edited.model_copy(update={"key": row.case_key}).content()
                chosen = EvalCase(
                    set_id=st.id,
                    case_key=row.case_key,
                    content_hash=case_hash(data),
                    data=data,
                    status="accepted",
                    provenance={**(row.provenance or {}), "edited_from": row.id},
                )
                s.add(chosen)
            else:
                row.status = "accepted"
            s.flush()
            latest = self._version(s, st, None)
            current = self._cases_of(s, latest)
            by_key = {c.case_key: c for c in current}
            order = [c.case_key for c in current]
            if chosen.case_key not in by_key:
                order.append(chosen.case_key)
            by_key[chosen.case_key] = chosen
            note = f"{'edited' if edited is not None else 'accepted'} {chosen.case_key}"
            info = self._write_version(s, st, latest, [by_key[k] for k in order], note)
            return _stored(chosen), info


def _pick(pending: list[EvalCase], refs: list[str]) -> list[EvalCase]:
    if refs == ["all"]:
        return list(pending)
    out: list[EvalCase] = []
    for ref in refs:
        hits = [r for r in pending if r.id.startswith(ref) or r.case_key == ref]
        if not hits:
            raise NotFoundError(
                f"no proposed case {ref!r}",
                hint="list them with `daytwo eval review --set SET`",
            )
        if len(hits) > 1:
            raise InputError(f"{ref!r} matches {len(hits)} proposed cases", hint="give more digits")
        out.append(hits[0])
    return out


def _stored(row: EvalCase) -> StoredCase:
    return StoredCase(row.id, row.case_key, row.status, dict(row.data), dict(row.provenance or {}))
