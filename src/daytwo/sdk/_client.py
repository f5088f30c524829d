"""``client``: the official ``openai`` SDK pointed at the daytwo model gateway."""

from __future__ import annotations

from typing import Any

import openai

from daytwo.exceptions import InputError
from daytwo.sdk._export import current_connection
from daytwo.sdk._http import http_client

__all__ = ["client"]


def client(
    url: str | None = None,
    api_key: str | None = None,
    *,
    session: str | None = None,
    user: str | None = None,
    **kwargs: Any,
) -> openai.OpenAI:
    """An ``openai.OpenAI`` whose calls go through the daytwo model gateway (``/v1``).

    ``url`` and ``api_key`` default to those given to :func:`~daytwo.sdk.init`. Model
    names are daytwo profiles (``local/smollm2-135m``, ``openai/gpt-4o-mini``) or the
    tenant's routes. Requests carry the current trace context, so each call's priced
    ``chat`` span joins the agent's trace; ``session`` and ``user`` are sent as
    ``x-daytwo-session`` / ``x-daytwo-user``. Other ``kwargs`` go to ``openai.OpenAI``.
    """
    conn = current_connection()
    base = (url or (conn.url if conn is not None else "")).strip().rstrip("/")
    key = api_key or (conn.api_key if conn is not None else None)
    if not base or not key:
        raise InputError(
            "no daytwo server to call",
            hint="call daytwo.sdk.init(url, api_key) first, or pass url= and api_key=",
        )
    headers = dict(kwargs.pop("default_headers", None) or {})
    if session:
        headers["x-daytwo-session"] = session
    if user:
        headers["x-daytwo-user"] = user
    kwargs.setdefault("http_client", http_client())
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, default_headers=headers, **kwargs)
