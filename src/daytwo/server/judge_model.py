"""A judge's model inside the server: the tenant's model through the model gateway.

A judgement run started over the API never names a URL or a file: the model is a name
the tenant may use on the model gateway (a chat profile or one of the tenant's routes
with its fallback chain), and every call is budget-checked and counted for the caller's
key and tenant, and traced with the caller on its span, like a ``/v1/chat/completions``
call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from daytwo.models.instrumented import ProfiledModel
from daytwo.models.types import ChatResponse, Message
from daytwo.server.auth import Principal

__all__ = ["GatewayJudgeModel"]


class GatewayJudgeModel:
    """``chat`` through ``gateway`` as ``principal`` (a :class:`~daytwo.evals.judges.ChatModel`)."""

    def __init__(self, gateway: Any, principal: Principal, name: str) -> None:
        self.gateway = gateway
        self.principal = principal
        self.model = gateway.chat_model(principal.tenant, name)  # NotFoundError: not the tenant's
        self.call = gateway.call_context(principal, {})
        # A profile without constrained JSON gets the judges' repair ladder only.
        self.json_schema = isinstance(self.model, ProfiledModel) and bool(
            self.model.profile.features.json_schema
        )

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResponse:
        """One budget-checked, counted and traced completion."""
        if not self.json_schema:
            options.pop("response_format", None)
        self.gateway.limits.check(self.principal)
        response: ChatResponse = self.call.run(lambda: self.model.chat(list(messages), **options))
        profile = self.gateway.registry.get(response.profile) if response.profile else None
        self.gateway.limits.record(self.principal, response.usage, profile)
        return response
