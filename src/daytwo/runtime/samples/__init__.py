"""Sample agents shipped with daytwo (``support.yaml``: the quickstart's support agent)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["SUPPORT_AGENT", "support_agent_path"]


def support_agent_path() -> Path:
    """Path of the sample support agent spec."""
    return Path(__file__).with_name("support.yaml")


SUPPORT_AGENT = "support"
"""Name of the sample support agent."""
