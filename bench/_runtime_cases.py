"""The daytwo agents bench/runtime.py and bench/runtime_ab.py time (no-op tool steps), and
the gateway their gateway cases call."""

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


def gateway_cases() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """The chain and the map with every tool call through the gateway (``gw_noop``)."""
    cases = daytwo_cases()
    chain, fan_map = cases["chain"], cases["fanout_map"]
    return {
        "gateway_chain": (
            {"name": "gwchain", "steps": [{**s, "tool": "gw_noop"} for s in chain[0]["steps"]]},
            chain[1],
        ),
        "gateway_fanout_map": (
            {"name": "gwmap", "steps": [{**fan_map[0]["steps"][0], "tool": "gw_noop"}]},
            fan_map[1],
        ),
    }


def noop_gateway(store: Any) -> Any:
    """The gateway cases' gateway: one Python no-op tool, ``gw_noop`` (``bench.noop``)."""
    from daytwo.gateway import Gateway

    gateway = Gateway(store)
    gateway.register_python("noop_fn", lambda i=0: {"i": i})
    gateway.register(
        {
            "name": "gw_noop",
            "capability": "bench.noop",
            "version": "1.0.0",
            "input_schema": {"type": "object", "properties": {"i": {"type": "integer"}}},
            "output_schema": {"type": "object", "properties": {"i": {"type": "integer"}}},
            "backend": {"type": "python", "callable": "noop_fn"},
        }
    )
    return gateway
