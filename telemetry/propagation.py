"""Trace context across a batch: one root span for the run, every call's span under it.

``batch_trace`` opens the root span of a whole ``llmpipe batch`` run
(``batch {file}``) and makes it current for the block, so every call run in
this process starts its ``chat`` span under it; its ``summary`` puts the
run's totals on it before it ends. Calls run elsewhere (the Ray engine's
workers) get the current context as a W3C trace-context carrier
(``current_carrier``: a ``traceparent`` / ``tracestate`` dict, through
OpenTelemetry's configured propagator, so ``OTEL_PROPAGATORS`` is honoured)
and make it current around each call (``attached``), so their spans join the
same trace, on whatever process or machine they ran.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from telemetry.instrument import TelemetryInstrument

__all__ = ["BatchTrace", "attached", "batch_trace", "current_carrier"]


class BatchTrace:
    """The root span of one batch run (``None`` when nothing traces)."""

    __slots__ = ("span",)

    def __init__(self, span: Span | None) -> None:
        self.span = span

    def summary(self, totals: Mapping[str, Any]) -> None:
        """The run's totals (ids, done, failed, tokens) as ``llmpipe.batch.*`` attributes."""
        if self.span is not None:
            self.span.set_attributes({f"llmpipe.batch.{k}": v for k, v in totals.items()})


@contextmanager
def batch_trace(instrument: object | None, name: str) -> Iterator[BatchTrace]:
    """The span around a whole batch, current for the block, ended on leaving.

    ``instrument`` is the pipeline instrument the run's calls use: a
    ``TelemetryInstrument`` whose tracer records gets the span (under the
    context current here, an application's span if any); otherwise nothing
    is made.
    """
    tracer = instrument.tracer() if isinstance(instrument, TelemetryInstrument) else None
    if tracer is None:
        yield BatchTrace(None)
        return
    span = tracer.start_span(name, kind=SpanKind.INTERNAL)
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield BatchTrace(span)
    except BaseException as exc:
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
        raise
    finally:
        otel_context.detach(token)
        span.end()


def current_carrier() -> dict[str, str]:
    """The current trace context as a W3C carrier, for calls run in other processes."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


@contextmanager
def attached(carrier: Mapping[str, str]) -> Iterator[None]:
    """Make the carrier's trace context current for the block (one call, in one task)."""
    token = otel_context.attach(propagate.extract(dict(carrier)))
    try:
        yield
    finally:
        otel_context.detach(token)
