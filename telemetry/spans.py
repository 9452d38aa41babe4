"""Spans of one call: a root span ``chat {model}`` and a child span per stage, by wrapping.

Stage bodies hold no span code: ``CallTelemetry`` is the call's instrument
(``ctx.instrument``, put there by ``TelemetryInstrument``), so ``run_stages``
hands it every stage to wrap. Each stage's span

- starts on the stage's first pull, with an explicit parent: the call's root
  span, or the segment (``retry``, ``tool_compat``) whose inner stage it is;
- is current only around each pull from the stage, never across a ``yield``,
  so the consumer's own spans never become its children and no context is
  left attached when a stream is closed from another task or by the garbage
  collector;
- ends exactly once, in ``finally``, with its outcome: ok, closed (the
  consumer stopped early), cancelled, or error (the only one with an error
  status); with the events in and out and the time spent in the stage itself
  (its pulls less its upstream's).

``Retrying`` and ``FallingBack`` events become span events of the stage that
emitted them; a group of a segment's inner stages (one fallback target) is a
span of its own (``telemetry.groups``).
What telemetry knows of attempts and chunks it is told: a stage run's attempt
is ``ctx.attempt`` (the retry segment's copy of the context), and dispatch
calls ``first_chunk`` from inside its own pull when an answer's first chunk
arrives, so the time to first chunk goes on the span of the stage being
pulled then, and the first of the call on the root. Telemetry never breaks
the pipeline: its own failures are logged at debug level.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from pipeline.context import Context
from pipeline.events import Event, FallingBack, Retrying
from pipeline.response import ResponseBuilder
from pipeline.runner import run_stages
from pipeline.secrets import guard_logger
from pipeline.stage import Stage
from telemetry import genai
from telemetry.groups import group_run
from telemetry.metrics import CallMetrics

__all__ = ["CallTelemetry"]

log = guard_logger("llmpipe.telemetry")


class _Count:
    """How many events an iterator gave (a stage's events out, its downstream's events in)."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = 0


class _Rec(_Count):
    """One stage run's measurements, and its span once started."""

    __slots__ = ("attempt", "index", "name", "parent", "self_s", "span", "started", "up")

    def __init__(
        self, name: str, index: int, up: _Count, parent: Span | None, attempt: int | None
    ) -> None:
        super().__init__()
        self.name = name
        self.index = index
        self.up = up
        self.parent = parent
        self.attempt = attempt
        self.self_s = 0.0
        self.span: Span | None = None
        self.started = 0.0


class CallTelemetry:
    """One call's telemetry, and the instrument of its stages (``ctx.instrument``)."""

    __slots__ = (
        "answer",
        "attrs",
        "capture",
        "last_error",
        "last_fallback",
        "last_retrying",
        "meters",
        "nested",
        "parent",
        "profile",
        "pulling",
        "recording",
        "recs",
        "request",
        "root",
        "spans",
        "started",
        "tracer",
        "ttfc",
    )

    def __init__(
        self, ctx: Context, tracer: Tracer | None, meters: CallMetrics | None, capture: bool
    ) -> None:
        self.request, self.profile = ctx.request, ctx.profile
        self.tracer = tracer
        self.meters = meters
        self.capture = capture
        #: the context current when the call started: the root span's parent
        self.parent = otel_context.get_current()
        self.root: Span | None = None
        self.recording = False
        self.attrs: dict[str, Any] = {}
        #: this call's stage spans and stage runs (kept, so no id is reused while it runs)
        self.spans: dict[int, Span] = {}
        self.recs: dict[AsyncIterator[Event], _Rec] = {}
        self.nested = 0.0
        #: the stage run whose pull is in progress, innermost (whom ``first_chunk`` is about)
        self.pulling: _Rec | None = None
        self.started = 0.0
        self.ttfc: float | None = None
        #: what the consumer was given: finish, retries, and the output content to capture
        self.answer = ResponseBuilder()
        self.last_retrying: Retrying | None = None
        self.last_fallback: FallingBack | None = None
        self.last_error: BaseException | None = None

    # --- the instrument of this call ------------------------------------------------

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        return self._root(run_stages(stages, upstream, ctx))

    def stage(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        if self.tracer is None:  # metrics only: first_chunk is all they need
            return st(upstream, ctx)
        up = self.recs.get(upstream)
        if up is None:
            counter = _Count()
            upstream = _counted(upstream, counter)
            index = 0
        else:
            counter, index = up, up.index + 1
        # Inside a segment's pull its span is current: it is the parent.
        parent = self.spans.get(id(trace.get_current_span()))
        attempt = ctx.attempt.number if ctx.attempt is not None else None
        rec = _Rec(st.name, index, counter, parent, attempt)
        wrapped = self._stage(st(upstream, ctx), rec)
        self.recs[wrapped] = rec
        return wrapped

    def group(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        ctx: Context,
    ) -> AsyncIterator[Event]:
        return group_run(self, name, attributes, stages, upstream, ctx)

    # --- the root span ----------------------------------------------------------------

    async def _root(self, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
        self._start_root()
        outcome, error = "ok", None
        try:
            feed = self.answer.feed
            async for ev in events:
                feed(ev)
                yield ev
        except GeneratorExit:
            outcome = "closed"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException as exc:
            outcome, error = "error", exc
            raise
        finally:
            try:
                await _aclose(events)
            finally:
                self._end_root(outcome, error)

    def _start_root(self) -> None:
        self.started = time.perf_counter()
        try:
            req, profile = self.request, self.profile
            self.attrs = genai.request_attributes(req, profile)
            if self.tracer is None:
                return
            root = self.tracer.start_span(
                f"{genai.OPERATION} {self.attrs[ga.GEN_AI_REQUEST_MODEL]}",
                context=self.parent,
                kind=SpanKind.CLIENT,
                attributes=self.attrs,
            )
            self.root = root
            self.recording = root.is_recording()
            if self.recording:
                root.set_attributes(genai.request_span_attributes(req))
                if self.capture:
                    root.set_attributes(genai.input_content(req))
        except Exception:
            log.debug("telemetry: cannot start the call's span", exc_info=True)
            self.recording = False

    def _end_root(self, outcome: str, error: BaseException | None) -> None:
        duration = time.perf_counter() - self.started
        self.spans.clear()
        self.recs.clear()
        etype = genai.error_type(error) if error is not None else None
        root = self.root
        try:
            if root is not None and self.recording:
                answer = self.answer
                attrs: dict[str, Any] = {
                    "llmpipe.outcome": outcome,
                    "llmpipe.retries": answer.retries,
                }
                if answer.finish is not None:
                    attrs.update(genai.response_attributes(answer.finish))
                if self.ttfc is not None:
                    attrs[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = self.ttfc
                if self.capture and (answer.delivered or answer.finish is not None):
                    text = answer.text
                    attrs.update(genai.output_content(text, answer.tool_calls, answer.finish))
                root.set_attributes(attrs)
                if error is not None:
                    self._fail(root, error)
        except Exception:
            log.debug("telemetry: cannot finish the call's span", exc_info=True)
        finally:
            if root is not None:
                root.end()
        if self.meters is not None:
            try:
                self.meters.record(
                    self.attrs,
                    duration_s=duration if outcome in ("ok", "error") else None,
                    ttfc_s=self.ttfc,
                    finish=self.answer.finish,
                    error_type=etype,
                )
            except Exception:
                log.debug("telemetry: cannot record the call's metrics", exc_info=True)

    # --- stage spans ------------------------------------------------------------------

    async def _stage(self, inner: AsyncIterator[Event], rec: _Rec) -> AsyncIterator[Event]:
        span = self._start_stage(rec) if self.recording else None
        if span is None:  # not sampled (or the span could not start): no span, same events
            try:
                async for ev in inner:
                    yield ev
            finally:
                await _aclose(inner)
            return
        span_ctx = trace.set_span_in_context(span, self.parent)
        attach, detach, clock = otel_context.attach, otel_context.detach, time.perf_counter
        outcome, error = "ok", None
        rec.span, rec.started = span, clock()
        try:
            while True:
                token = attach(span_ctx)
                nested, outer = self.nested, self.pulling
                self.pulling = rec
                t0 = clock()
                try:
                    ev = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    spent = clock() - t0
                    rec.self_s += spent - (self.nested - nested)
                    self.nested = nested + spent
                    self.pulling = outer
                    detach(token)
                rec.out += 1
                if type(ev) is Retrying and ev is not self.last_retrying:
                    self.last_retrying = ev
                    self._retrying(span, ev)
                elif type(ev) is FallingBack and ev is not self.last_fallback:
                    self.last_fallback = ev
                    self._falling_back(span, ev)
                yield ev
        except GeneratorExit:
            outcome = "closed"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except BaseException as exc:
            outcome, error = "error", exc
            raise
        finally:
            try:
                await _aclose(inner)
            finally:
                self._end_stage(span, rec, outcome, error)

    def _start_stage(self, rec: _Rec) -> Span | None:
        parent = rec.parent if rec.parent is not None else self.root
        if self.tracer is None or parent is None:
            return None
        attrs: dict[str, Any] = {"llmpipe.stage.name": rec.name, "llmpipe.stage.index": rec.index}
        if rec.attempt is not None:
            attrs["llmpipe.attempt"] = rec.attempt
        try:
            span = self.tracer.start_span(
                rec.name, context=trace.set_span_in_context(parent, self.parent), attributes=attrs
            )
        except Exception:
            log.debug("telemetry: cannot start a stage span", exc_info=True)
            return None
        self.spans[id(span)] = span
        return span

    def _end_stage(self, span: Span, rec: _Rec, outcome: str, error: BaseException | None) -> None:
        try:
            span.set_attributes(
                {
                    "llmpipe.stage.outcome": outcome,
                    "llmpipe.stage.events_in": rec.up.out,
                    "llmpipe.stage.events_out": rec.out,
                    "llmpipe.stage.self_time_s": max(rec.self_s, 0.0),
                }
            )
            if error is not None:
                self._fail(span, error)
        except Exception:
            log.debug("telemetry: cannot finish a stage span", exc_info=True)
        finally:
            span.end()

    def first_chunk(self, ctx: Context) -> None:
        """Dispatch got an answer's first chunk: the time to it, on the call (the
        first one) and on the span of the stage run being pulled (dispatch's own)."""
        now = time.perf_counter()
        if self.ttfc is None:
            self.ttfc = now - self.started
        rec = self.pulling
        if rec is not None and rec.span is not None:
            try:
                rec.span.set_attribute(ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, now - rec.started)
            except Exception:
                log.debug("telemetry: cannot record the first chunk", exc_info=True)

    def _retrying(self, span: Span, ev: Retrying) -> None:
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

    def _falling_back(self, span: Span, ev: FallingBack) -> None:
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

    def fail(self, span: Span, error: BaseException) -> None:
        self._fail(span, error)

    def _fail(self, span: Span, error: BaseException) -> None:
        """Error status and ``error.type``; the exception event only where it was first seen."""
        secret = self.request.api_key
        span.set_attribute(genai.ERROR_TYPE, genai.error_type(error))
        span.set_status(Status(StatusCode.ERROR, genai.scrub(str(error), secret)[:500]))
        if error is not self.last_error:
            self.last_error = error
            span.add_event("exception", genai.exception_attributes(error, secret))


async def _counted(upstream: AsyncIterator[Event], counter: _Count) -> AsyncIterator[Event]:
    try:
        async for ev in upstream:
            counter.out += 1
            yield ev
    finally:
        await _aclose(upstream)


async def _aclose(events: AsyncIterator[Event]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
