"""``score``: user feedback or a label for a trace, stored by the daytwo server."""

from __future__ import annotations

from typing import Any

import httpx

from daytwo.exceptions import DaytwoError, InputError, NotFoundError, PermissionDenied
from daytwo.sdk._export import connection, flush

__all__ = ["score"]


def score(
    trace_id: str,
    name: str,
    value: float | bool | str,
    comment: str | None = None,
    *,
    timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Record a score of ``trace_id`` (e.g. ``score(obs.trace_id, "user_feedback", 1)``).

    Spans still buffered are exported first, so a trace can be scored right after it
    ended. Returns the stored score; raises NotFoundError for a trace the server does
    not have for your tenant, InputError for a bad name or value.
    """
    conn = connection()
    flush()
    try:
        response = httpx.post(
            f"{conn.url}/api/v1/traces/{trace_id}/scores",
            json={"name": name, "value": value, "comment": comment},
            headers={"Authorization": f"Bearer {conn.api_key}"},
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise DaytwoError(
            f"could not reach the daytwo server at {conn.url}: {exc}",
            hint="check the URL given to daytwo.sdk.init",
        ) from exc
    if response.status_code == 201:
        result: dict[str, Any] = response.json()
        return result
    try:
        error = response.json().get("error", {})
    except ValueError:
        error = {}
    message = error.get("message") or f"HTTP {response.status_code}"
    hint = error.get("hint")
    if response.status_code == 404:
        raise NotFoundError(message, hint=hint)
    if response.status_code in (401, 403):
        raise PermissionDenied(message, hint=hint)
    if response.status_code in (400, 422):
        raise InputError(message, hint=hint)
    raise DaytwoError(f"the server answered {response.status_code}: {message}", hint=hint)
