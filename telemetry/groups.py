"""Group spans: one named run of a segment's inner stages as a span of its own.

A segment that runs its inner stages several times for different reasons
(the fallback segment: once per target) asks for each run as a group
(``Context.run(..., group=(name, attributes))``, ``Instrument.group``). The
group's span is a child of the segment's span and the parent of the inner
stages' spans of that run, so a trace shows each target as its own subtree.
Like a stage span, it is current only while the run's stages are chained
(never across a ``yield``), and ends exactly once with its outcome; only a
run that failed has an error status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from pipeline.context import Context
from pipeline.events import Event
from pipeline.runner import run_stages
from pipeline.secrets import guard_logger
from pipeline.stage import Stage
from telemetry.stage_spans import aclose, outcome_of

if TYPE_CHECKING:
    from telemetry.spans import CallTelemetry

__all__ = ["group_run"]

log = guard_logger("llmpipe.telemetry")


def group_run(
    call: CallTelemetry,
    name: str,
    attributes: Mapping[str, str | int | float | bool],
    stages: tuple[Stage, ...],
    upstream: AsyncIterator[Event],
    ctx: Context,
) -> AsyncIterator[Event]:
    """The run's events; with a span around them when the call is traced."""
    span = _start(call, name, attributes)
    if span is None:
        return run_stages(stages, upstream, ctx)
    token = otel_context.attach(trace.set_span_in_context(span, call.parent))
    try:  # the run's stage spans take the group's span as their parent
        inner = run_stages(stages, upstream, ctx)
    finally:
        otel_context.detach(token)
    return _grouped(call, inner, span)


def _start(
    call: CallTelemetry, name: str, attributes: Mapping[str, str | int | float | bool]
) -> Span | None:
    if call.tracer is None or not call.recording:
        return None
    parent = call.spans.get(id(trace.get_current_span())) or call.root
    if parent is None:
        return None
    try:
        span = call.tracer.start_span(
            name, context=trace.set_span_in_context(parent, call.parent), attributes=attributes
        )
    except Exception:
        log.debug("telemetry: cannot start a group span", exc_info=True)
        return None
    call.spans[id(span)] = span
    return span


async def _grouped(
    call: CallTelemetry, inner: AsyncIterator[Event], span: Span
) -> AsyncIterator[Event]:
    outcome, error = "ok", None
    try:
        async for ev in inner:
            yield ev
    except BaseException as exc:
        outcome, error = outcome_of(exc)
        raise
    finally:
        try:
            await aclose(inner)
        finally:
            try:
                span.set_attribute("llmpipe.group.outcome", outcome)
                if error is not None:
                    call.fail(span, error)
            except Exception:
                log.debug("telemetry: cannot finish a group span", exc_info=True)
            finally:
                span.end()
