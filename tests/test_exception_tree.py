"""Every exception class daytwo defines lives in daytwo/exceptions.py, in its drawn tree.

Specs match ``retry_on`` by class name and the server maps classes to HTTP statuses,
so an error class defined somewhere else is one nobody can find. The scan reads the
source (``ast``): a class is an exception class when one of its bases is a built-in
exception, a class of ``daytwo.exceptions`` or another class found this way.
"""

from __future__ import annotations

import ast
import builtins
import re
from pathlib import Path

import daytwo.exceptions

SRC = Path(__file__).resolve().parents[1] / "src" / "daytwo"
TREE = SRC / "exceptions.py"

# Module-private signals caught in the module that raises them, never leaving it.
PRIVATE_SIGNALS = {
    "gateway/backends.py": {"_Retryable"},
    "gateway/egress.py": {"_Unresolved"},
    "gateway/openapi.py": {"_Unsupported"},
    "knowledge/estimate.py": {"_Rollback"},
    "knowledge/generations.py": {"_Changed"},
    "knowledge/ingest.py": {"_NotPrepared"},
    "server/routes/otlp.py": {"_TooLarge"},
}


def _base_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def exception_classes(files: dict[str, str]) -> dict[str, set[str]]:
    """Relative path -> the exception classes its source defines (to a fixed point)."""
    known = {
        name
        for name, value in vars(builtins).items()
        if isinstance(value, type) and issubclass(value, BaseException)
    }
    known |= set(daytwo.exceptions.__all__)
    classes = {
        rel: [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.ClassDef)]
        for rel, text in files.items()
    }
    found: dict[str, set[str]] = {}
    changed = True
    while changed:
        changed = False
        for rel, defs in classes.items():
            for cls in defs:
                if cls.name in found.get(rel, set()):
                    continue
                if any(_base_name(b) in known for b in cls.bases):
                    found.setdefault(rel, set()).add(cls.name)
                    known.add(cls.name)
                    changed = True
    return found


def _sources() -> dict[str, str]:
    return {
        path.relative_to(SRC).as_posix(): path.read_text(encoding="utf-8")
        for path in sorted(SRC.rglob("*.py"))
        if path != TREE and "migrations" not in path.parts
    }


def test_no_exception_class_outside_the_tree() -> None:
    found = exception_classes(_sources())
    outside = {
        rel: sorted(names - PRIVATE_SIGNALS.get(rel, set()))
        for rel, names in found.items()
        if names - PRIVATE_SIGNALS.get(rel, set())
    }
    assert outside == {}, "define these in src/daytwo/exceptions.py (and draw them in its tree)"


def test_every_exception_is_in_the_drawn_tree() -> None:
    doc = daytwo.exceptions.__doc__ or ""
    drawn = set(re.findall(r"^[\s│├└─]*(\w+)\s", doc, flags=re.MULTILINE))
    assert set(daytwo.exceptions.__all__) - drawn == set()


def test_the_scan_finds_an_exception_class() -> None:
    """The scan can fail: a new error anywhere (directly or through a subclass) is seen."""
    found = exception_classes(
        {
            "a.py": "from daytwo.exceptions import ToolError\nclass Mine(ToolError):\n    pass\n",
            "b.py": "import a\nclass Deeper(a.Mine):\n    pass\nclass Plain:\n    pass\n",
            "c.py": "class Bare(ValueError):\n    pass\n",
        }
    )
    assert found == {"a.py": {"Mine"}, "b.py": {"Deeper"}, "c.py": {"Bare"}}


def test_the_drawing_matches_the_classes() -> None:
    """Each class is drawn under one of its real base classes."""
    doc = daytwo.exceptions.__doc__ or ""
    stack: list[tuple[int, str]] = []
    wrong = []
    for line in doc.splitlines():
        match = re.match(r"^([\s│├└─]*)(\w+)(\s|$)", line)
        if match is None or match.group(2) not in daytwo.exceptions.__all__:
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        cls = getattr(daytwo.exceptions, name)
        if stack and stack[-1][1] not in {b.__name__ for b in cls.__bases__}:
            wrong.append(f"{name} drawn under {stack[-1][1]}")
        stack.append((depth, name))
    assert wrong == []
