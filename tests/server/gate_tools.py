"""Tool functions the cross-worker test's servers import (``gate_tools:mark`` and ``:gated``).

Each call leaves a file ``<kind>-<pid>-<n>-<account>`` in ``$GATE_TOOLS_DIR``, so the
test knows which server process ran which step of which run. ``gated`` then waits
until the test creates the file ``open`` there: a step that is still running when its
worker is killed.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path
from typing import Any

_calls = itertools.count()


def _record(kind: str, account: str) -> Path:
    gate = Path(os.environ["GATE_TOOLS_DIR"])
    (gate / f"{kind}-{os.getpid()}-{next(_calls)}-{account}").touch()
    return gate


def mark(account: str) -> dict[str, Any]:
    """Returns at once."""
    _record("mark", account)
    return {"account": account, "seen": True}


def gated(account: str) -> dict[str, Any]:
    """Returns once the gate is open (at most 120 s)."""
    gate = _record("gated", account)
    deadline = time.monotonic() + 120
    while not (gate / "open").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"account": account, "approved": True}
