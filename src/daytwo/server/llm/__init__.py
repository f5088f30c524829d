"""The model gateway: OpenAI-compatible and Anthropic Messages routes under ``/v1/``.

Any agent that speaks the OpenAI or Anthropic API (their official SDKs, LangChain,
LiteLLM clients, ...) calls daytwo's models through it with a daytwo API key and
gets daytwo's context checks, structured-output ladder, fallbacks, budgets, rate
limits and one priced ``chat`` span per model call in its own trace.
"""

from daytwo.server.llm.api import FAST_ROUTES, router
from daytwo.server.llm.service import ModelGateway

__all__ = ["FAST_ROUTES", "ModelGateway", "router"]
