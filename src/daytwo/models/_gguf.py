"""Read the metadata of a GGUF file (header key/values only, never the tensors).

The format (github.com/ggml-org/ggml docs/gguf.md): magic ``GGUF``, version u32,
tensor count u64, key/value count u64, then the key/values, little-endian.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

from daytwo.exceptions import InputError

__all__ = ["read_gguf_metadata"]

_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING = 8
_ARRAY = 9


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack(fmt, data)[0]


def _string(fh: BinaryIO) -> str:
    length = _read(fh, "<Q")
    return fh.read(length).decode("utf-8", errors="replace")


def _value(fh: BinaryIO, kind: int) -> Any:
    if kind in _SCALARS:
        return _read(fh, _SCALARS[kind])
    if kind == _STRING:
        return _string(fh)
    if kind == _ARRAY:
        item_kind = _read(fh, "<I")
        count = _read(fh, "<Q")
        if item_kind == _STRING:
            return [_string(fh) for _ in range(count)]
        if item_kind in _SCALARS:
            fmt = _SCALARS[item_kind]
            size = struct.calcsize(fmt)
            raw = fh.read(size * count)
            return list(struct.unpack("<" + fmt[1] * count, raw))
        return [_value(fh, item_kind) for _ in range(count)]
    raise ValueError(f"unknown GGUF value type {kind}")


def read_gguf_metadata(path: Path) -> dict[str, Any]:
    """Every metadata key/value of the GGUF file at ``path``."""
    try:
        with path.open("rb") as fh:
            if fh.read(4) != b"GGUF":
                raise InputError(
                    f"{path} is not a GGUF file", hint="give the path of a .gguf model file"
                )
            version = _read(fh, "<I")
            if version < 2:
                raise InputError(f"{path} is GGUF v{version}; only v2+ is supported")
            _read(fh, "<Q")  # tensor count
            count = _read(fh, "<Q")
            meta: dict[str, Any] = {}
            for _ in range(count):
                key = _string(fh)
                meta[key] = _value(fh, _read(fh, "<I"))
            return meta
    except (EOFError, ValueError, struct.error) as exc:
        raise InputError(
            f"{path} is a truncated or corrupt GGUF file", hint="download the model again"
        ) from exc
