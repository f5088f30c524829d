"""The schema check every CLI command makes, without importing Alembic.

Alembic (and loading every migration script through it) costs 0.4 to 0.8 s of a cold
CLI start on a busy machine. The heads of the shipped scripts are read here from their
``revision`` / ``down_revision`` assignments with :mod:`ast` (no script is executed)
and compared with the ``alembic_version`` rows read by plain SQL; only a mismatch goes
to :mod:`daytwo.store.migrate` for the detailed answer. A test pins these heads to
Alembic's own.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import Engine

__all__ = ["script_heads", "stored_heads"]

_VERSIONS = Path(__file__).with_name("migrations") / "versions"


def _assigned(tree: ast.Module, name: str) -> object:
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return ast.literal_eval(node.value) if node.value is not None else None
    return None


@functools.cache
def script_heads() -> frozenset[str]:
    """Head revisions of the migration scripts shipped with the code."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in _VERSIONS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        revision = _assigned(tree, "revision")
        if not isinstance(revision, str):
            continue
        revisions.add(revision)
        down = _assigned(tree, "down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, (tuple, list)):
            parents.update(str(d) for d in down)
    return frozenset(revisions - parents)


def stored_heads(engine: Engine) -> set[str] | None:
    """The revisions recorded in ``alembic_version``; None when it cannot be read."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            return {str(v) for v in rows}
    except sa.exc.DBAPIError:
        return None
