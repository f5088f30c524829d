"""Tracing layer: OpenTelemetry spans in the DB, cost ledger, decision records, audit log.

Other layers only use ``opentelemetry.trace.get_tracer("daytwo.<layer>")`` and
:func:`record_decision`; :func:`setup_tracing` (called by the CLI, the server and
workers) makes their spans land in the system of record. The audit log lives in
:mod:`daytwo.tracing.audit`.
"""

from daytwo.tracing.attribution import attributed
from daytwo.tracing.audit import AuditLog, AuditRecord
from daytwo.tracing.decisions import record_decision
from daytwo.tracing.pricing import Price, PriceSource, SpanCost
from daytwo.tracing.setup import TracingHandle, current_handle, setup_tracing

__all__ = [
    "AuditLog",
    "AuditRecord",
    "Price",
    "PriceSource",
    "SpanCost",
    "TracingHandle",
    "attributed",
    "current_handle",
    "record_decision",
    "setup_tracing",
]
