"""Model layer: providers, profiles, tokenizers and budgets, structured output, canaries."""

from daytwo.models.local import LocalModelServer, LocalModelSettings, default_local_model_path
from daytwo.models.openai_compat import OpenAICompatProvider
from daytwo.models.types import ChatResponse, Message, ToolCall, Usage

__all__ = [
    "ChatResponse",
    "LocalModelServer",
    "LocalModelSettings",
    "Message",
    "OpenAICompatProvider",
    "ToolCall",
    "Usage",
    "default_local_model_path",
]
