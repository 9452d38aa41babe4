"""A span per stage run, by wrapping: ``StageRun``, made by the call's instrument.

Each stage run's span

- starts on the stage's first pull, with an explicit parent: the call's root
  span, or the segment (``retry``, ``tool_compat``) whose inner stage it is;
- is current only around each pull from the stage, never across a ``yield``,
  so the consumer's own spans never become its children and no context is
  left attached when a stream is closed from another task or by the garbage
  collector;
- ends exactly once, in ``finally``, with its outcome: ok, closed (the
  consumer stopped early), cancelled, or error (the only one with an error
  status); with the events in and out and the time spent in the stage itself
  (its pulls less its upstream's), and its attempt (``ctx.attempt``).

``Retrying`` and ``FallingBack`` events become span events of the stage that
emitted them. While
a stage run is pulling, it is the call's ``pulling`` run: what
``CallTelemetry.first_chunk`` is about.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from pipeline.events import Event, FallingBack, Retrying
from pipeline.secrets import guard_logger

if TYPE_CHECKING:
    from telemetry.spans import CallTelemetry

__all__ = ["Counter", "StageRun", "aclose", "counted", "outcome_of"]

log = guard_logger("llmpipe.telemetry")


class Counter:
    """How many events an iterator gave (a stage's events out, its downstream's events in)."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = 0


class StageRun(Counter):
    """One stage run: its measurements, its span once started, and the wrapper."""

    __slots__ = ("attempt", "call", "index", "name", "parent", "self_s", "span", "started", "up")

    def __init__(
        self,
        call: CallTelemetry,
        name: str,
        index: int,
        up: Counter,
        parent: Span | None,
        attempt: int | None,
    ) -> None:
        super().__init__()
        self.call = call
        self.name = name
        self.index = index
        self.up = up
        self.parent = parent
        self.attempt = attempt
        self.self_s = 0.0
        self.span: Span | None = None
        self.started = 0.0

    async def run(self, inner: AsyncIterator[Event]) -> AsyncIterator[Event]:
        """The stage's events, its span around each pull; the span ended once, in ``finally``."""
        call, rec = self.call, self
        span = self._start() if call.recording else None
        if span is None:  # not sampled (or the span could not start): no span, same events
            try:
                async for ev in inner:
                    yield ev
            finally:
                await aclose(inner)
            return
        span_ctx = trace.set_span_in_context(span, call.parent)
        attach, detach, clock = otel_context.attach, otel_context.detach, time.perf_counter
        outcome, error = "ok", None
        rec.span, rec.started = span, clock()
        try:
            while True:
                token = attach(span_ctx)
                nested, outer = call.nested, call.pulling
                call.pulling = rec
                t0 = clock()
                try:
                    ev = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    spent = clock() - t0
                    rec.self_s += spent - (call.nested - nested)
                    call.nested = nested + spent
                    call.pulling = outer
                    detach(token)
                rec.out += 1
                if type(ev) is Retrying and ev is not call.last_retrying:
                    call.last_retrying = ev
                    _retry_event(span, ev)
                elif type(ev) is FallingBack and ev is not call.last_fallback:
                    call.last_fallback = ev
                    _fallback_event(span, ev)
                yield ev
        except BaseException as exc:
            outcome, error = outcome_of(exc)
            raise
        finally:
            try:
                await aclose(inner)
            finally:
                self._end(span, outcome, error)

    def _start(self) -> Span | None:
        call = self.call
        parent = self.parent if self.parent is not None else call.root
        if call.tracer is None or parent is None:
            return None
        attrs: dict[str, Any] = {"llmpipe.stage.name": self.name, "llmpipe.stage.index": self.index}
        if self.attempt is not None:
            attrs["llmpipe.attempt"] = self.attempt
        try:
            span = call.tracer.start_span(
                self.name, context=trace.set_span_in_context(parent, call.parent), attributes=attrs
            )
        except Exception:
            log.debug("telemetry: cannot start a stage span", exc_info=True)
            return None
        call.spans[id(span)] = span
        return span

    def _end(self, span: Span, outcome: str, error: BaseException | None) -> None:
        try:
            span.set_attributes(
                {
                    "llmpipe.stage.outcome": outcome,
                    "llmpipe.stage.events_in": self.up.out,
                    "llmpipe.stage.events_out": self.out,
                    "llmpipe.stage.self_time_s": max(self.self_s, 0.0),
                }
            )
            if error is not None:
                self.call.fail(span, error)
        except Exception:
            log.debug("telemetry: cannot finish a stage span", exc_info=True)
        finally:
            span.end()


def _retry_event(span: Span, ev: Retrying) -> None:
    try:
        span.add_event(
            "retry",
            {
                "llmpipe.retry.attempt": ev.attempt,
                "llmpipe.retry.delay_s": ev.delay_s,
                "llmpipe.retry.reason": ev.reason,
            },
        )
    except Exception:
        log.debug("telemetry: cannot record a retry", exc_info=True)


def _fallback_event(span: Span, ev: FallingBack) -> None:
    try:
        span.add_event(
            "fallback",
            {
                "llmpipe.fallback.from_model": ev.from_model,
                "llmpipe.fallback.to_model": ev.to_model,
                "llmpipe.fallback.reason": ev.reason,
            },
        )
    except Exception:
        log.debug("telemetry: cannot record a fallback", exc_info=True)


def outcome_of(exc: BaseException) -> tuple[str, BaseException | None]:
    """How a run that ``exc`` ended, ended: closed (the consumer stopped early),
    cancelled, or an error (the only one a span reports as an error)."""
    if isinstance(exc, GeneratorExit):
        return "closed", None
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled", None
    return "error", exc


async def counted(upstream: AsyncIterator[Event], counter: Counter) -> AsyncIterator[Event]:
    try:
        async for ev in upstream:
            counter.out += 1
            yield ev
    finally:
        await aclose(upstream)


async def aclose(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
