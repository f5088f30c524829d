"""Model layer: providers, profiles, tokenizers and budgets, structured output, canaries.

Start with :func:`get_model`, which binds a provider to a profile of the YAML
registry (:mod:`daytwo.models.profiles`)::

    model = get_model("local/smollm2-135m", settings)
    reply = model.chat([Message(role="user", content="hi")], max_tokens=32)
    result = generate(model, messages, schema=MyPydanticModel)

An abstract :class:`PromptDefinition` compiles into one family's request with
:func:`compile_prompt` (see :mod:`daytwo.models.prompts`)::

    compiled = compile_prompt(definition, model.profile, max_tokens=256)
    answer = complete_compiled(model, compiled, definition.output_schema)
"""

from daytwo.models.adapter import Completion, complete_compiled, complete_definition
from daytwo.models.base import ChatModel, Provider
from daytwo.models.budget import BudgetReport, BudgetStrategy, fit_to_budget
from daytwo.models.instrumented import ProfiledModel, get_model, make_provider
from daytwo.models.local import (
    LocalModelServer,
    LocalModelSettings,
    LocalProvider,
    default_local_model_path,
)
from daytwo.models.openai_compat import OpenAICompatProvider
from daytwo.models.profiles import (
    Features,
    PriceBook,
    Profile,
    ProfileRegistry,
    Prompting,
    Sampling,
    Training,
    load_profiles,
)
from daytwo.models.prompts import (
    CompiledPrompt,
    ContextSlot,
    Example,
    PromptDefinition,
    compile_prompt,
)
from daytwo.models.structured import Attempt, Ladder, StructuredResult, generate
from daytwo.models.tokens import TokenCount, count_messages, count_text, get_tokenizer
from daytwo.models.types import ChatResponse, Message, ToolCall, Usage

__all__ = [
    "Attempt",
    "BudgetReport",
    "BudgetStrategy",
    "ChatModel",
    "ChatResponse",
    "CompiledPrompt",
    "Completion",
    "ContextSlot",
    "Example",
    "Features",
    "Ladder",
    "LocalModelServer",
    "LocalModelSettings",
    "LocalProvider",
    "Message",
    "OpenAICompatProvider",
    "PriceBook",
    "Profile",
    "ProfileRegistry",
    "ProfiledModel",
    "PromptDefinition",
    "Prompting",
    "Provider",
    "Sampling",
    "StructuredResult",
    "TokenCount",
    "ToolCall",
    "Training",
    "Usage",
    "compile_prompt",
    "complete_compiled",
    "complete_definition",
    "count_messages",
    "count_text",
    "default_local_model_path",
    "fit_to_budget",
    "generate",
    "get_model",
    "get_tokenizer",
    "load_profiles",
    "make_provider",
]
