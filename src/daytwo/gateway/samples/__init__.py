"""Sample tools for the support agent: one capability (``orders.status``), two tools.

``orders_status_cached`` answers from a cache in about a millisecond, possibly
a little stale; ``orders_status_live`` asks the "order system" and takes
0.3–2.5 s but is always current. The runtime's planner picks between them from
live telemetry. Both are python backends over a small dataset shipped here.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daytwo.exceptions import ToolNotFound
from daytwo.gateway.contracts import ToolDefinition

if TYPE_CHECKING:
    from daytwo.gateway.catalog import ToolRecord
    from daytwo.gateway.gateway import Gateway

__all__ = [
    "ORDERS",
    "orders_status_cached",
    "orders_status_live",
    "register_samples",
    "risk_backend",
    "sample_definitions",
    "sample_yaml_path",
]

ORDERS: dict[str, dict[str, Any]] = {
    "A-1001": {"status": "shipped", "carrier": "DHL", "eta_days": 2, "items": 3},
    "A-1002": {"status": "processing", "carrier": None, "eta_days": 5, "items": 1},
    "A-1003": {"status": "delivered", "carrier": "UPS", "eta_days": 0, "items": 2},
    "A-1004": {"status": "cancelled", "carrier": None, "eta_days": None, "items": 4},
    "A-1005": {"status": "shipped", "carrier": "FedEx", "eta_days": 1, "items": 1},
    "A-1006": {"status": "returned", "carrier": "DHL", "eta_days": None, "items": 2},
}
"""The sample order system (order id -> record)."""

_live_delay: tuple[float, float] = (0.3, 2.5)
_rng = random.Random(7)
_rng_lock = threading.Lock()


def _lookup(order_id: str) -> dict[str, Any]:
    order = ORDERS.get(order_id)
    if order is None:
        raise ToolNotFound(f"order {order_id!r} does not exist", hint="check the order id")
    return order


def orders_status_cached(order_id: str) -> dict[str, Any]:
    """Status from the cache: fast, may lag the order system by minutes."""
    order = _lookup(order_id)
    return {
        "order_id": order_id,
        "status": order["status"],
        "eta_days": order["eta_days"],
        "source": "cache",
        "fresh": False,
    }


def orders_status_live(order_id: str, include_items: bool = False) -> dict[str, Any]:
    """Status from the order system: comprehensive and current, slow (0.3–2.5 s)."""
    with _rng_lock:
        delay = _rng.uniform(*_live_delay)
    time.sleep(delay)
    order = _lookup(order_id)
    out: dict[str, Any] = {
        "order_id": order_id,
        "status": order["status"],
        "eta_days": order["eta_days"],
        "carrier": order["carrier"],
        "source": "live",
        "fresh": True,
    }
    if include_items:
        out["items"] = order["items"]
    return out


_OUTPUT = {
    "type": "object",
    "required": ["order_id", "status", "source"],
    "properties": {
        "order_id": {"type": "string"},
        "status": {
            "type": "string",
            "enum": ["processing", "shipped", "delivered", "cancelled", "returned"],
        },
        "eta_days": {"type": ["integer", "null"], "minimum": 0},
        "carrier": {"type": ["string", "null"]},
        "items": {"type": "integer"},
        "source": {"type": "string"},
        "fresh": {"type": "boolean"},
    },
}


def sample_definitions() -> list[ToolDefinition]:
    """The definitions of the two sample tools."""
    common: dict[str, Any] = {
        "capability": "orders.status",
        "version": "1.0.0",
        "output_schema": _OUTPUT,
        "expectations": {
            "status": {
                "type": "string",
                "enum": ["processing", "shipped", "delivered", "cancelled", "returned"],
            },
            "eta_days": {
                "type": "integer",
                "minimum": 0,
                "maximum": 60,
                "unit": "days",
                "nullable": True,
            },
        },
    }
    cached = ToolDefinition.model_validate(
        {
            **common,
            "name": "orders_status_cached",
            "description": "Order status from the cache (about 1 ms, may be minutes stale).",
            "input_schema": {
                "type": "object",
                "required": ["order_id"],
                "additionalProperties": False,
                "properties": {"order_id": {"type": "string", "pattern": "^A-[0-9]{4}$"}},
            },
            "backend": {
                "type": "python",
                "callable": "daytwo.gateway.samples:orders_status_cached",
            },
            "cost_usd": 0.0001,
        }
    )
    live = ToolDefinition.model_validate(
        {
            **common,
            "name": "orders_status_live",
            "description": "Order status from the order system (0.3-2.5 s, always current).",
            "input_schema": {
                "type": "object",
                "required": ["order_id"],
                "additionalProperties": False,
                "properties": {
                    "order_id": {"type": "string", "pattern": "^A-[0-9]{4}$"},
                    "include_items": {"type": "boolean"},
                },
            },
            "backend": {"type": "python", "callable": "daytwo.gateway.samples:orders_status_live"},
            "cost_usd": 0.002,
        }
    )
    return [cached, live]


def register_samples(gateway: Gateway) -> list[ToolRecord]:
    """Register the two ``orders.status`` tools (idempotent)."""
    return gateway.register_many(sample_definitions())


def risk_backend(account: str) -> dict[str, Any]:
    """A risk API after its silent change: categories instead of a 0-1 probability."""
    score = (sum(map(ord, account)) % 100) / 100
    label = "LOW" if score < 0.4 else "MEDIUM" if score < 0.8 else "HIGH"
    return {"account": account, "risk_score": label}


def sample_yaml_path() -> Path:
    """The shipped example tool definition (``risk_score.yaml``)."""
    return Path(__file__).with_name("risk_score.yaml")
