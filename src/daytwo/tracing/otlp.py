"""Decode OTLP/HTTP trace export requests, protobuf or JSON, with ``opentelemetry-proto``.

The JSON encoding of OTLP differs from protobuf's canonical JSON in one way that
matters: trace and span ids are hex strings, not base64. They are converted before
``json_format`` parses the document, so both encodings end in the same message.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from daytwo.exceptions import InputError

__all__ = [
    "JSON",
    "PROTOBUF",
    "ExportTraceServiceRequest",
    "ExportTraceServiceResponse",
    "decode_request",
    "encode_response",
    "media_type",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_ID_FIELDS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def media_type(content_type: str | None) -> str:
    """The OTLP encoding named by a Content-Type header; InputError for anything else."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if kind == JSON:
        return JSON
    raise InputError(
        f"content type {kind or '(none)'!r} is not an OTLP encoding",
        hint=f"send Content-Type: {PROTOBUF} (or {JSON} for OTLP/JSON)",
    )


def _hex_to_b64(value: Any, where: str) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InputError(
            f"{where} is not a hex id: {value[:40]!r}",
            hint="OTLP/JSON ids are hex strings (32 digits for a trace id, 16 for a span id)",
        ) from None
    return base64.b64encode(raw).decode("ascii")


def _fix_ids(obj: dict[str, Any], where: str) -> None:
    for name in _ID_FIELDS:
        if name in obj:
            obj[name] = _hex_to_b64(obj[name], f"{where}.{name}")
    for i, link in enumerate(obj.get("links") or ()):
        if isinstance(link, dict):
            _fix_ids(link, f"{where}.links[{i}]")


def _json_ids_to_base64(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise InputError(
            "the OTLP/JSON body is not an object", hint="send {'resourceSpans': [...]}"
        )
    for r, rs in enumerate(doc.get("resourceSpans") or doc.get("resource_spans") or ()):
        if not isinstance(rs, dict):
            continue
        for s, ss in enumerate(rs.get("scopeSpans") or rs.get("scope_spans") or ()):
            if not isinstance(ss, dict):
                continue
            for i, span in enumerate(ss.get("spans") or ()):
                if isinstance(span, dict):
                    _fix_ids(span, f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]")


def decode_request(body: bytes, encoding: str) -> ExportTraceServiceRequest:
    """Parse an uncompressed export request body; InputError with the reason when malformed."""
    request = ExportTraceServiceRequest()
    if encoding == PROTOBUF:
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            raise InputError(
                f"the body is not a valid OTLP protobuf ExportTraceServiceRequest ({exc})",
                hint="send the bytes an OTLP exporter produces (truncated or corrupted body?)",
            ) from exc
        return request
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(
            f"the body is not valid JSON ({exc})", hint="send an OTLP/JSON document"
        ) from exc
    _json_ids_to_base64(doc)
    try:
        json_format.ParseDict(doc, request, ignore_unknown_fields=True)
    except (json_format.ParseError, binascii.Error, ValueError, TypeError) as exc:
        raise InputError(
            f"the body is not a valid OTLP/JSON ExportTraceServiceRequest ({exc})",
            hint="see the OTLP/JSON encoding of ExportTraceServiceRequest",
        ) from exc
    return request


def encode_response(encoding: str, *, rejected: int = 0, message: str = "") -> tuple[bytes, str]:
    """An ExportTraceServiceResponse in the request's encoding (partial success when given)."""
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    if encoding == PROTOBUF:
        return response.SerializeToString(), PROTOBUF
    return json_format.MessageToJson(response, indent=None).encode(), JSON
