"""Model profiles (YAML registry) and the price book built from them.

A *profile* names one model as deployed: provider and endpoint, context window,
tokenizer, chat template, engine, quantization, supported features and dated
prices. The registry reads the profiles shipped in ``profiles.yaml`` and then the
user's ``<data_dir>/profiles.yaml`` (or any extra files), later files replacing
earlier profiles of the same name.
"""

from __future__ import annotations

import difflib
import logging
from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daytwo.exceptions import ConfigError, NotFoundError
from daytwo.tracing.pricing import Price

if TYPE_CHECKING:
    from daytwo.settings import Settings

__all__ = [
    "Features",
    "PriceBook",
    "Profile",
    "ProfileRegistry",
    "Prompting",
    "Sampling",
    "Training",
    "load_profiles",
]

log = logging.getLogger("daytwo.models")

ProviderKind = Literal["local", "openai", "openai_compat", "anthropic"]


class Features(BaseModel):
    """What a model/provider supports."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    json_schema: bool = False
    tools: bool = False
    logprobs: bool = False
    seed: bool = False
    streaming: bool = True
    embeddings: bool = False
    """An embedding model (served by ``/v1/embeddings``), not a chat model."""


StructuredMode = Literal["json_schema", "json_mode", "grammar", "tool_call", "prompt"]


class Prompting(BaseModel):
    """How this model family takes a prompt (what :func:`daytwo.models.compile_prompt` uses).

    ``structured`` picks how a JSON answer is obtained: ``json_schema`` (the vendor's
    structured outputs), ``json_mode`` (``response_format: json_object`` plus the shape
    in the prompt), ``grammar`` (a llama.cpp grammar compiled from the schema),
    ``tool_call`` (one forced tool whose parameters are the schema) or ``prompt`` (the
    shape in the prompt only). Unset, it follows the features and ``sampling.grammar``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_role: bool = True
    """False: the family has no system role; the system text is folded into the first
    user turn (as the Gemma and early Mistral templates do)."""
    few_shot: Literal["turns", "inline"] = "turns"
    """Few-shot examples as user/assistant turns, or inline in the instructions."""
    structured: StructuredMode | None = None
    stop: list[str] = Field(default_factory=list)
    """Stop sequences every request to this family carries."""


class Sampling(BaseModel):
    """Inference parameters for this engine and quantization (None: the engine's default).

    A more aggressive quantization flattens or sharpens the token distribution, so the
    temperature/top-p that suited one build are not right for another:
    ``daytwo models canary check`` recommends changes when the logprobs drift.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    repeat_penalty: float | None = Field(default=None, gt=0)
    grammar: bool = False
    """Constrain structured answers with a grammar (llama.cpp) rather than a prompt."""
    note: str | None = None


class Training(BaseModel):
    """What fine-tuning this model costs (the re-prompt or fine-tune decision)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    price_per_1m_tokens: float = Field(ge=0)
    """USD per 1M training tokens (tokens of the examples times epochs)."""
    epochs: int = Field(default=3, ge=1)
    min_examples: int = Field(default=10, ge=1)
    """Fewer examples than this: fine-tuning is not offered as a path."""
    note: str | None = None


class Profile(BaseModel):
    """One deployed model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    provider: ProviderKind
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    context_window: int = Field(gt=0)
    max_output_tokens: int = Field(default=1024, gt=0)
    tokenizer: str
    chat_template: str = "chatml"
    engine: str = "unknown"
    quantization: str | None = None
    features: Features = Field(default_factory=Features)
    prices: list[Price] = Field(default_factory=list)
    prompting: Prompting = Field(default_factory=Prompting)
    sampling: Sampling = Field(default_factory=Sampling)
    engine_options: dict[str, int | float | str | bool] = Field(default_factory=dict)
    """Local engine settings of this deployment (``n_batch``, ``n_ubatch``, ``threads``,
    ``cache_type_k``, ...): two profiles of the same weights can differ only here."""
    training: Training | None = None

    @field_validator("prices")
    @classmethod
    def _dated(cls, prices: list[Price]) -> list[Price]:
        if any(p.effective_from is None for p in prices):
            raise ValueError("every price needs an effective_from date")
        return prices

    def price_at(self, at: datetime) -> Price | None:
        """The price in effect at ``at`` (None when no price is known for that date)."""
        day = at.astimezone(UTC).date() if at.tzinfo else at.date()
        current = [p for p in self.prices if p.effective_from and p.effective_from <= day]
        return max(current, key=lambda p: p.effective_from or day) if current else None


def _read_file(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(
            f"cannot read profiles file {path}: {exc}", hint="fix its permissions"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"profiles file {path} is not valid YAML: {exc}", hint="fix the YAML syntax"
        ) from exc
    if not isinstance(data, dict) or not isinstance(data.get("profiles", {}), dict):
        raise ConfigError(
            f"profiles file {path} must hold a mapping 'profiles: {{name: {{...}}}}'",
            hint="see the shipped daytwo/models/profiles.yaml for the shape",
        )
    profiles = data.get("profiles") or {}
    return {str(k): v for k, v in profiles.items()}


class ProfileRegistry:
    """Profiles by name, from the shipped YAML and the user's files."""

    def __init__(self, profiles: dict[str, Profile]) -> None:
        self._profiles = dict(profiles)

    @classmethod
    def load(cls, *extra: Path) -> ProfileRegistry:
        """Shipped profiles, then every existing file of ``extra`` in order."""
        shipped = resources.files("daytwo.models").joinpath("profiles.yaml")
        raw: dict[str, tuple[Path | str, dict[str, Any]]] = {}
        with resources.as_file(shipped) as shipped_path:
            for name, body in _read_file(shipped_path).items():
                raw[name] = ("daytwo/models/profiles.yaml", body)
        for path in extra:
            if path.is_file():
                for name, body in _read_file(path).items():
                    raw[name] = (path, body)
        profiles: dict[str, Profile] = {}
        for name, (source, body) in raw.items():
            if not isinstance(body, dict):
                raise ConfigError(f"profile {name!r} in {source} is not a mapping")
            try:
                profiles[name] = Profile(name=name, **body)
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(p) for p in err["loc"])
                raise ConfigError(
                    f"profile {name!r} in {source}: {loc}: {err['msg']}",
                    hint="fix that field (see the shipped profiles.yaml for examples)",
                ) from exc
        return cls(profiles)

    def names(self) -> list[str]:
        """Every profile name, sorted."""
        return sorted(self._profiles)

    def all(self) -> list[Profile]:
        """Every profile, sorted by name."""
        return [self._profiles[n] for n in self.names()]

    def get(self, name: str) -> Profile:
        """The profile ``name`` or NotFoundError naming the close ones."""
        try:
            return self._profiles[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=3, cutoff=0.4)
            hint = (
                f"did you mean {', '.join(close)}?"
                if close
                else f"known profiles: {', '.join(self.names())}"
            )
            raise NotFoundError(
                f"unknown model profile {name!r}",
                hint=hint + " (add your own in <data_dir>/profiles.yaml)",
            ) from None

    def with_profile(self, profile: Profile) -> ProfileRegistry:
        """A copy with ``profile`` added or replaced."""
        return ProfileRegistry({**self._profiles, profile.name: profile})


def load_profiles(settings: Settings | None = None) -> ProfileRegistry:
    """The registry for these settings: shipped profiles plus ``<data_dir>/profiles.yaml``."""
    if settings is None:
        return ProfileRegistry.load()
    return ProfileRegistry.load(settings.data_dir / "profiles.yaml")


class PriceBook:
    """Dated prices by profile name or model id. Unknown is None, never 0."""

    def __init__(self, registry: ProfileRegistry) -> None:
        self._registry = registry
        self._warned: set[str] = set()

    def _profile_for(self, model_or_profile: str) -> Profile | None:
        try:
            return self._registry.get(model_or_profile)
        except NotFoundError:
            pass
        for profile in self._registry.all():
            if profile.model == model_or_profile:
                return profile
        return None

    def price(self, model_or_profile: str, at: datetime) -> Price | None:
        """The price in effect at ``at``; None (and a warning, once) when unknown."""
        profile = self._profile_for(model_or_profile)
        price = profile.price_at(at) if profile is not None else None
        if price is None and model_or_profile not in self._warned:
            self._warned.add(model_or_profile)
            log.warning("no price known for %s at %s: cost is unknown", model_or_profile, at.date())
        return price

    def cost(
        self,
        model_or_profile: str,
        at: datetime,
        *,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> Decimal | None:
        """Cost of one call in the price's currency, or None when the price is unknown."""
        price = self.price(model_or_profile, at)
        if price is None:
            return None
        return price.cost(input_tokens, output_tokens, cached_tokens, reasoning_tokens)
