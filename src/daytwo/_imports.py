"""Import the object a ``package.module:attr`` reference names (agents, service factories)."""

from __future__ import annotations

import importlib
from typing import Any

from daytwo.exceptions import InputError, NotFoundError

__all__ = ["import_attr"]


def import_attr(spec: str, *, what: str, example: str) -> Any:
    """The object ``spec`` (``package.module:attr``) names.

    InputError when ``spec`` is not of that shape, NotFoundError when the module
    does not import or has no such attribute; ``what`` and ``example`` go into the messages.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(
            f"{what} {spec!r} must look like package.module:attr", hint=f"e.g. {example}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise NotFoundError(
            f"cannot import {module_name!r} for the {what}: {exc}",
            hint="check PYTHONPATH and the module name",
        ) from exc
    if not hasattr(module, attr):
        raise NotFoundError(f"{module_name} has no attribute {attr!r}", hint=f"e.g. {example}")
    return getattr(module, attr)
