"""Trace context across processes: a batch's span in the driver, its calls' spans in workers.

The driver opens one span for the batch (``batch_span``) and hands its
workers a W3C trace-context carrier (a ``traceparent`` / ``tracestate``
dict, through OpenTelemetry's configured propagator, so ``OTEL_PROPAGATORS``
is honoured); a worker makes it current around each call (``attached``), so
the call's ``chat`` span is a child of the batch's span, in one trace, on
whatever process or machine it ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from telemetry.instrument import TelemetryInstrument

__all__ = ["attached", "batch_span"]


@contextmanager
def batch_span(
    instrument: object | None, name: str, attributes: Mapping[str, Any] | None = None
) -> Iterator[dict[str, str]]:
    """A span around a whole batch, ended on leaving; yields the carrier for workers.

    ``instrument`` is the driver's pipeline instrument: a ``TelemetryInstrument``
    whose tracer records gets the span; otherwise no span is made and the
    carrier holds the context current here (an application's own span, if any).
    The span is never made current in this process, so nothing else nests in it.
    """
    tracer = instrument.tracer() if isinstance(instrument, TelemetryInstrument) else None
    carrier: dict[str, str] = {}
    if tracer is None:
        propagate.inject(carrier)
        yield carrier
        return
    span = tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=dict(attributes or {}))
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    try:
        yield carrier
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        span.end()


@contextmanager
def attached(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the carrier's trace context current for the block (one call, in one task)."""
    token = otel_context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        otel_context.detach(token)
