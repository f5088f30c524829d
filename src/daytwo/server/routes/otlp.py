"""OTLP/HTTP trace ingest: ``POST /v1/traces`` (protobuf or JSON, optionally gzip).

Any agent with an OpenTelemetry exporter sends its spans here with a daytwo API key
(``Authorization: Bearer dt_...`` or ``X-API-Key``, role operator or higher). Each
request is stored in one transaction, attributed to the key's tenant, and each trace
becomes a run (see :mod:`daytwo.runtime.external`). Errors answer with OTLP's status
shape (``google.rpc.Status``) in the request's encoding, never a partial write.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from google.protobuf import json_format
from google.rpc import status_pb2
from sqlalchemy.orm import Session

from daytwo import exceptions as exc
from daytwo.exceptions import NotAuthenticated
from daytwo.server.auth import Principal
from daytwo.server.errors import status_of
from daytwo.server.tenancy import principal_string, tenant_of
from daytwo.tracing.otlp import JSON, PROTOBUF, decode_request, encode_response, media_type

__all__ = ["MAX_OTLP_BYTES", "OTLP_PATH", "router", "status_body", "too_large_body"]

log = logging.getLogger("daytwo.server.otlp")

OTLP_PATH = "/v1/traces"
MAX_OTLP_BYTES = 16 << 20
"""Largest export request, compressed or not (16 MiB; split larger batches)."""

router = APIRouter(tags=["otlp"])

# google.rpc.Code of each HTTP status we answer.
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 415: 3, 503: 14, 500: 13}


def status_body(status: int, message: str, encoding: str) -> tuple[bytes, str]:
    """An OTLP error body (``google.rpc.Status``) in ``encoding``."""
    msg = status_pb2.Status(code=_GRPC.get(status, 2), message=message)
    if encoding == PROTOBUF:
        return msg.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(msg, indent=None).encode(), JSON


def _error(status: int, message: str, encoding: str, **headers: str) -> Response:
    body, ctype = status_body(status, message, encoding)
    return Response(body, status_code=status, media_type=ctype, headers=headers or None)


def _gunzip(body: bytes) -> bytes:
    # 16 + MAX_WBITS: gzip framing; bounded output so a small bomb cannot fill memory.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, MAX_OTLP_BYTES + 1)
    except zlib.error as e:
        raise exc.InputError(
            f"the body is not valid gzip ({e})", hint="compress the whole body with gzip"
        ) from e
    if len(out) > MAX_OTLP_BYTES:
        raise _TooLarge
    if not inflater.eof:
        raise exc.InputError("the gzip body is truncated", hint="send the whole compressed body")
    return out


class _TooLarge(Exception):
    pass


_TOO_LARGE = (
    f"the export request is larger than {MAX_OTLP_BYTES} bytes; nothing was stored. "
    "Send smaller batches (e.g. BatchSpanProcessor(max_export_batch_size=512))"
)


def too_large_body(content_type: str) -> tuple[bytes, str]:
    """The 413 answer in the request's OTLP encoding (used by the body-size guard)."""
    encoding = PROTOBUF if PROTOBUF in content_type or "protobuf" in content_type else JSON
    return status_body(413, _TOO_LARGE, encoding)


def _too_large(encoding: str) -> Response:
    return _error(413, _TOO_LARGE, encoding)


def _principal(request: Request) -> Principal:
    keys = request.app.state.keys
    auth = request.headers.get("authorization", "")
    key = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
    key = key or request.headers.get("x-api-key", "").strip()
    if not key:
        raise NotAuthenticated(
            "no API key given",
            hint="send `Authorization: Bearer <key>` (OTEL_EXPORTER_OTLP_HEADERS or "
            "daytwo.sdk.init(url, api_key))",
        )
    principal: Principal = keys.authenticate(key)
    principal.require("operator")
    return principal


def _prices(request: Request) -> Any:
    """The price source spans are priced from (the models layer's price book)."""
    from daytwo.tracing import current_handle

    handle = current_handle()
    if handle is not None and handle.store_processor.prices is not None:
        return handle.store_processor.prices
    prices = getattr(request.app.state, "prices", None)
    if prices is None:
        from daytwo.models.profiles import PriceBook, load_profiles

        prices = request.app.state.prices = PriceBook(load_profiles(request.app.state.settings))
    return prices


def _store(request: Request, principal: Principal, message: Any) -> tuple[int, str]:
    from daytwo.runtime.external import record_external_runs
    from daytwo.tracing import current_handle
    from daytwo.tracing.ingest import parse_request, store_batch

    recorded = principal_string(principal)
    batch = parse_request(
        message, tenant=principal.tenant, principal=recorded, prices=_prices(request)
    )
    # This server's own spans of the same calls (the model gateway's chat spans) must
    # be stored first, so a framework span around one is seen as its wrapper now.
    handle = current_handle()
    if handle is not None:
        handle.flush(timeout_s=5.0)
    audit = request.app.state.audit

    def work(s: Session) -> int:
        conn = s.connection()
        result = store_batch(conn, batch, tenant_of=tenant_of)
        created = record_external_runs(conn, result.traces, recorded)
        if created:
            # One record per request (not per run): appends are serialised by the chain.
            audit.append(
                "runs.external",
                principal.label,
                subject="otlp",
                data={"source": "otlp", "runs": created, "spans": result.accepted},
                session=s,
                run_id=created[0] if len(created) == 1 else None,
            )
        return result.accepted

    accepted = request.app.state.store.write(work)
    warning = ""
    if batch.unpriced_models:
        names = ", ".join(sorted(batch.unpriced_models))
        warning = (
            f"cost unknown (no price) for model(s) {names}: spans stored as unpriced, not $0; "
            "add a price to the model profile, then `daytwo costs reprice`"
        )
        log.warning("OTLP ingest from %s: %s", principal.label, warning)
    return accepted, warning


@router.post(
    OTLP_PATH,
    summary="Ingest OpenTelemetry traces (OTLP/HTTP, protobuf or JSON, gzip)",
    response_class=Response,
    responses={
        200: {"content": {PROTOBUF: {}, JSON: {}}, "description": "ExportTraceServiceResponse"},
        400: {"description": "Malformed request (google.rpc.Status)"},
        401: {"description": "Missing or unknown API key"},
        403: {"description": "The key's role may not ingest (needs operator)"},
        409: {"description": "A trace of the request belongs to another tenant"},
        413: {"description": "Request larger than 16 MiB"},
        415: {"description": "Not application/x-protobuf or application/json"},
    },
)
async def export_traces(request: Request) -> Response:
    encoding = JSON
    try:
        encoding = media_type(request.headers.get("content-type"))
    except exc.InputError as e:
        return _error(415, f"{e.message}; {e.hint}", JSON)
    try:
        principal = await run_in_threadpool(_principal, request)
        body = await request.body()
        if len(body) > MAX_OTLP_BYTES:
            return _too_large(encoding)
        content_encoding = request.headers.get("content-encoding", "identity").lower().strip()
        if content_encoding == "gzip":
            body = _gunzip(body)
        elif content_encoding not in ("", "identity"):
            raise exc.InputError(
                f"content encoding {content_encoding!r} is not supported",
                hint="send the body uncompressed or gzip-compressed",
            )
        message = decode_request(body, encoding)
        accepted, warning = await run_in_threadpool(_store, request, principal, message)
    except _TooLarge:
        return _too_large(encoding)
    except exc.DaytwoError as e:
        status, _ = status_of(e)
        if status >= 500:
            log.warning("OTLP ingest failed: %s", e, exc_info=e)
        text = e.message + (f"; {e.hint}" if e.hint else "")
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return _error(status, text, encoding, **headers)
    body_out, ctype = encode_response(encoding, message=warning)
    return Response(body_out, media_type=ctype, headers={"X-Daytwo-Accepted-Spans": str(accepted)})
