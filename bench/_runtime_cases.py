"""The daytwo agents bench/runtime.py and bench/runtime_ab.py time (no-op tool steps)."""

from __future__ import annotations

from typing import Any

N = 10
"""Steps of the chain, items of the map, independent steps of the fan-out."""


def daytwo_cases() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Case name -> (agent spec, run inputs): the 10-step chain, the 10-item map step, and
    the 10 independent steps (one wave)."""
    chain = {
        "name": "chain",
        "steps": [
            {
                "id": f"s{i}",
                "kind": "tool",
                "tool": "noop",
                **({"after": [f"s{i - 1}"]} if i else {}),
            }
            for i in range(N)
        ],
    }
    fan_map = {
        "name": "fanmap",
        "steps": [
            {
                "id": "m",
                "kind": "map",
                "items": "input.items",
                "tool": "noop",
                "arguments": {"i": "{{ item }}"},
                "concurrency": N,
            }
        ],
    }
    fan_steps = {
        "name": "fansteps",
        "steps": [{"id": f"b{i}", "kind": "tool", "tool": "noop"} for i in range(N)],
    }
    return {
        "chain": (chain, {}),
        "fanout_map": (fan_map, {"items": list(range(N))}),
        "fanout_steps": (fan_steps, {}),
    }
