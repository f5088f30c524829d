"""The public API is exactly what daytwo.__all__ lists (httpx's test_exported_members)."""

from __future__ import annotations

import daytwo


def test_all_names_exist_and_are_public() -> None:
    for name in daytwo.__all__:
        assert hasattr(daytwo, name), name
    exported = {
        name
        for name in dir(daytwo)
        if not name.startswith("_") and not isinstance(getattr(daytwo, name), type(daytwo))
    }
    assert exported == set(daytwo.__all__) - {"__version__"}
