"""External anchoring: signed chain heads copied to an append-only file outside the store.

Whoever can write the database can delete checkpoints and rewrite the records they
sealed; they cannot reach a file the operator keeps elsewhere (an append-only mount,
a bucket with object lock, a file shipped to a transparency log). Every checkpoint is
appended to it as one JSON line (the checkpoint as signed), after its transaction
commits; ``daytwo audit verify`` then requires each anchored checkpoint to still be in
the store, unchanged, with the records it seals.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from daytwo.exceptions import ConfigError, InputError
from daytwo.tracing.chain import Checkpoint

__all__ = ["append_anchor", "read_anchors"]


def append_anchor(path: Path, cp: Checkpoint) -> None:
    """Append ``cp`` as one line to ``path`` (created when absent; never rewritten)."""
    line = (json.dumps(cp.to_dict(), sort_keys=True, separators=(",", ":")) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the audit anchor file {path}: {exc}",
            hint="point the audit_anchor_file setting at a writable, append-only location",
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_anchors(path: Path) -> list[Checkpoint]:
    """Every checkpoint anchored in ``path``, in file order (InputError when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(
            f"the audit anchor file {path} does not exist",
            hint="pass the file the audit_anchor_file setting writes to",
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the audit anchor file {path}: {exc}") from exc
    anchors: list[Checkpoint] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            anchors.append(
                Checkpoint(
                    seq=int(item["seq"]),
                    hash=str(item["hash"]),
                    prev_seq=int(item["prev_seq"]),
                    at=str(item["at"]),
                    key_id=str(item["key_id"]),
                    public_key=str(item["public_key"]),
                    signature=str(item["signature"]),
                    marks=None if item.get("marks") is None else str(item["marks"]),
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"line {number} of the audit anchor file {path} is not a checkpoint: {exc}",
                hint="the file holds one JSON checkpoint per line; restore it from its copy",
            ) from exc
    return anchors
