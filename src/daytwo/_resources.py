"""Locate files shipped inside installed packages (model weights, tokenizers)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from daytwo.exceptions import MissingDependency

__all__ = ["package_file"]


def package_file(module: str, relpath: str, *, install: str) -> Path:
    """Path of ``relpath`` inside the installed package ``module``.

    ``install`` is the command that installs it, quoted in the error.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency(f"the package {module} is not installed", hint=install)
    path = Path(next(iter(spec.submodule_search_locations))) / relpath
    if not path.is_file():
        raise MissingDependency(f"{path} is missing", hint=install)
    return path
