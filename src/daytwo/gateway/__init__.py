"""Tool gateway: versioned contracts, backends, adapters, drift, credentials, policies, MCP.

Agents call tools only through :class:`Gateway`, which insulates them from
backend churn and enforces security in one place.
"""

from daytwo.gateway.agents import Agent
from daytwo.gateway.catalog import ToolRecord
from daytwo.gateway.contracts import (
    AdapterSpec,
    Expectation,
    ToolDefinition,
    ToolPolicy,
    load_definitions,
)
from daytwo.gateway.diff import ContractDiff, diff_definitions
from daytwo.gateway.gateway import DriftAlert, Gateway, ToolResult
from daytwo.gateway.telemetry import ToolStats
from daytwo.gateway.vault import CredentialVault

__all__ = [
    "AdapterSpec",
    "Agent",
    "ContractDiff",
    "CredentialVault",
    "DriftAlert",
    "Expectation",
    "Gateway",
    "ToolDefinition",
    "ToolPolicy",
    "ToolRecord",
    "ToolResult",
    "ToolStats",
    "diff_definitions",
    "load_definitions",
]
