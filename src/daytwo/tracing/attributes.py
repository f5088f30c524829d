"""Span attribute and event names shared by every layer (see DEVELOPERS.md, "Spans")."""

from __future__ import annotations

__all__ = [
    "AGENT_NAME",
    "AGENT_VERSION",
    "COST_OPERATIONS",
    "DECISION_DATA",
    "DECISION_EVENT",
    "DECISION_KIND",
    "DECISION_SUMMARY",
    "KB_COLLECTION",
    "KB_HITS",
    "KB_MODE",
    "MODEL_PROFILE",
    "OPERATION",
    "PRINCIPAL",
    "PROVIDER",
    "REQUEST_MODEL",
    "RESPONSE_MODEL",
    "RUN_ID",
    "SESSION_ID",
    "STEP_ID",
    "STEP_KIND",
    "TENANT",
    "TOOL_COST_USD",
    "TOOL_NAME",
    "USAGE_CACHE_READ_INPUT",
    "USAGE_INPUT",
    "USAGE_OUTPUT",
    "USAGE_REASONING_OUTPUT",
    "USER_ID",
]

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT = "gen_ai.usage.reasoning.output_tokens"
MODEL_PROFILE = "daytwo.model.profile"
TOOL_NAME = "gen_ai.tool.name"
TOOL_COST_USD = "daytwo.tool.cost_usd"
KB_COLLECTION = "daytwo.kb.collection"
KB_MODE = "daytwo.kb.mode"
KB_HITS = "daytwo.kb.hits"
RUN_ID = "daytwo.run.id"
STEP_ID = "daytwo.step.id"
STEP_KIND = "daytwo.step.kind"
AGENT_NAME = "daytwo.agent.name"
AGENT_VERSION = "daytwo.agent.version"
PRINCIPAL = "daytwo.principal"
TENANT = "daytwo.tenant"
SESSION_ID = "daytwo.session.id"
USER_ID = "daytwo.user.id"

DECISION_EVENT = "daytwo.decision"
DECISION_KIND = "daytwo.decision.kind"
DECISION_SUMMARY = "daytwo.decision.summary"
DECISION_DATA = "daytwo.decision.data"

COST_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})
"""``gen_ai.operation.name`` values of model calls: the only spans priced by token usage."""
