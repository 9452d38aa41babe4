"""Spans of one call: a root span ``chat {model}``, a span per stage run and per attempt.

Stage bodies hold no span code: ``CallTelemetry`` is the call's instrument
(``ctx.instrument``, put there by ``TelemetryInstrument``), so ``run_stages``
hands it every stage to wrap, and segments hand it every labelled run of
their inner stages (``ctx.run(..., group=("attempt 2", {}))``). What telemetry knows
it is told, never guessed from names or from the current span:

- each stage run gets a context whose instrument is bound to that run
  (``telemetry.runs.Bound``): the stages a segment chains through it are its children, the
  parts it starts are its children, and dispatch's ``first_chunk`` names
  the run it came from;
- a part's attempt number is ``ctx.attempt``; what the segment does after a
  failed part (``Retrying``: cause and delay) comes through ``group_failed``.

How the tree reads in a backend that sorts siblings by start time: every
span starts at the moment its run was built, which is pipeline order (a
chain is built front to back; stamps are kept at least 1 µs apart), and a
stage that ran to its end ends when it gave its last event, so ``normalize``
lasts the 0.1 ms of its work rather than the whole call. Spans are still
started on the first pull (so a chain built and never run leaves none
open), made current only around each pull (a ``contained`` stage's is
not made current at all), never across a ``yield``, and ended exactly
once, in ``finally`` (``telemetry.runs``). A segment that stands aside for
a call is not run in it (``pipeline.runner``), so it has no span.

Error status only where a failure arose: the stage that raised it (with the
``exception`` event), the attempt it ended, and the root when the call
failed; a stage it only passed through ends ``closed``. With OpenInference
on, what succeeded is ``OK``. Telemetry never breaks the pipeline: its own
failures are logged at debug level. The root span and the metrics are
``telemetry.root``'s. The module is a little over 300 lines: the call's
instrument and the span methods it calls on every pull are one hot path,
kept together so it reads (and profiles) as one thing.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from pipeline.context import Context
from pipeline.events import Event, FallingBack, Retrying
from pipeline.response import ResponseBuilder
from pipeline.runner import run_stages
from pipeline.secrets import guard_logger
from pipeline.stage import Stage
from telemetry import genai
from telemetry import openinference as oi
from telemetry.metrics import CallMetrics
from telemetry.root import OK, root_run
from telemetry.runs import Bound, Count, Rec, counted, run_part, run_stage, then_attributes

__all__ = ["CallTelemetry"]

log = guard_logger("llmpipe.telemetry")


class CallTelemetry:
    """One call's telemetry, and the instrument of its top-level stages (``ctx.instrument``)."""

    __slots__ = (
        "answer",
        "attrs",
        "capture",
        "last_note",
        "meters",
        "oi",
        "parent",
        "pending",
        "profile",
        "recording",
        "recs",
        "request",
        "root",
        "seen",
        "stamp_ns",
        "started",
        "started_ns",
        "tracer",
        "ttfc",
    )

    def __init__(
        self,
        ctx: Context,
        tracer: Tracer | None,
        meters: CallMetrics | None,
        capture: bool,
        openinference: bool = True,
    ) -> None:
        self.request, self.profile = ctx.request, ctx.profile
        self.tracer = tracer
        self.meters = meters
        self.capture = capture
        self.oi = openinference
        #: the context current when the call started: the root span's parent
        self.parent = otel_context.get_current()
        self.root: Span | None = None
        self.recording = False
        self.attrs: dict[str, Any] = {}
        #: this call's stage runs by the iterator they return (kept while it runs)
        self.recs: dict[AsyncIterator[Event], Rec] = {}
        #: failures already recorded where they arose, by id (kept, so no id is reused)
        self.seen: dict[int, BaseException] = {}
        #: failed parts waiting for their segment's word (``group_failed``), by context id
        self.pending: dict[int, tuple[Context, Rec]] = {}
        self.started = time.perf_counter()
        self.started_ns = self.stamp_ns = time.time_ns()
        self.ttfc: float | None = None
        #: what the consumer was given: finish, retries, and the output content to capture
        self.answer = ResponseBuilder()
        self.last_note: Event | None = None

    # --- the instrument of this call ------------------------------------------------

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        return root_run(self, run_stages(stages, upstream, ctx))

    def stage(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        return self.wrap(st, upstream, ctx, None)

    def first_chunk(self, ctx: Context) -> None:
        self.ttfc = time.perf_counter() - self.started

    def group(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        ctx: Context,
    ) -> AsyncIterator[Event]:
        return self.wrap_part(name, attributes, stages, upstream, ctx, None)

    def group_failed(self, ctx: Context, error: BaseException, then: Event) -> None:
        entry = self.pending.pop(id(ctx), None)
        if entry is not None:
            self.end_part(entry[1], error, then)

    # --- what the bound instruments call ------------------------------------------------

    def ns(self, perf: float) -> int:
        """A ``perf_counter`` reading as span time (nanoseconds since the epoch)."""
        return self.started_ns + int((perf - self.started) * 1e9)

    def stamp(self) -> tuple[int, float]:
        """Now, as span time at least 1 µs after the last stamp, and as ``perf_counter``."""
        perf = time.perf_counter()
        ns = max(self.ns(perf), self.stamp_ns + 1000)
        self.stamp_ns = ns
        return ns, perf

    def wrap(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context, parent: Rec | None
    ) -> AsyncIterator[Event]:
        if self.tracer is None:  # metrics only: first_chunk is all they need
            return st(upstream, ctx)
        up = self.recs.get(upstream)
        if up is None:
            counter = Count()
            upstream = counted(upstream, counter)
            index = 0
        else:
            counter, index = up, up.index + 1
        attempt = ctx.attempt.number if ctx.attempt is not None else None
        rec = Rec(st.name, index, counter, parent, attempt, self.stamp())
        rec.current = not getattr(st, "contained", False)
        if up is not None:
            up.consumed = True
        if parent is not None:
            if parent.part:
                parent.last = rec  # chained front to back: the last one is the part's outermost
            host = parent.parent if parent.part else parent  # whose pulls this chain runs in
            if host is not None:
                host.kids.append(rec)
        inner = st(upstream, ctx.replace(instrument=Bound(self, rec)))
        wrapped = run_stage(self, inner, rec)
        self.recs[wrapped] = rec
        return wrapped

    def wrap_part(
        self,
        label: str,
        attributes: Mapping[str, str | int | float | bool],
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        ctx: Context,
        parent: Rec | None,
    ) -> AsyncIterator[Event]:
        if self.tracer is None:
            return run_stages(stages, upstream, ctx)
        self.seen.clear()  # what failed in an earlier part is no longer on its way out
        attempt = ctx.attempt.number if ctx.attempt is not None else None
        rec = Rec(label, 0, Count(), parent, attempt, self.stamp(), part=True)
        rec.attrs = attributes
        if parent is not None:
            parent.parts.append(rec)
        inner = run_stages(stages, upstream, ctx.replace(instrument=Bound(self, rec)))
        last = rec.last
        if last is None:  # no stage of its own: a wrapper ends it
            return run_part(self, inner, rec, ctx)
        # its last stage's end (the chain closes it last) is its end: no wrapper, no cost
        # per event
        last.closes = (rec, ctx)
        return inner

    def first_chunk_in(self, rec: Rec) -> None:
        """Dispatch got an answer's first chunk: the call's time to it (the last one
        reported is the answer's: a later attempt starts only after an earlier
        one delivered nothing), and dispatch's own on its span."""
        now = time.perf_counter()
        self.ttfc = now - self.started
        if rec.span is not None:
            try:
                rec.span.set_attribute(ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, now - rec.built_s)
            except Exception:
                log.debug("telemetry: cannot record the first chunk", exc_info=True)

    def start_span(self, rec: Rec) -> Span | None:
        up = rec.parent
        if up is not None and up.part and up.span is None and up.ended_ns is None:
            self.start_span(up)  # a part starts with the first pull of its last stage
        parent = up.span if up is not None else self.root
        if self.tracer is None or parent is None:
            return None
        attrs: dict[str, Any] = {}
        if not rec.part:
            attrs["llmpipe.stage.name"] = rec.name
            attrs["llmpipe.stage.index"] = rec.index
        elif rec.attrs:
            attrs.update(rec.attrs)
        if rec.attempt is not None:
            attrs["llmpipe.attempt"] = rec.attempt
        if self.oi:
            attrs[oi.KIND] = oi.CHAIN
        try:
            span = self.tracer.start_span(
                rec.name,
                context=trace.set_span_in_context(parent, self.parent),
                attributes=attrs,
                start_time=rec.built_ns,
            )
        except Exception:
            log.debug("telemetry: cannot start a span", exc_info=True)
            return None
        rec.span = span
        return span

    def end_stage(self, rec: Rec, outcome: str, error: BaseException | None) -> None:
        try:
            self._end_stage_span(rec, outcome, error)
        finally:
            if rec.closes is not None:  # the last stage of a part: the part ended with it
                self.part_ended(*rec.closes, outcome, error)

    def _end_stage_span(self, rec: Rec, outcome: str, error: BaseException | None) -> None:
        span = rec.span
        if span is None:
            return
        end = self.ns(time.perf_counter())
        try:
            if error is not None and id(error) in self.seen:
                outcome, error = "closed", None  # it arose upstream and only passed through
            span.set_attributes(
                {
                    "llmpipe.stage.outcome": outcome,
                    "llmpipe.stage.events_in": rec.up.out,
                    "llmpipe.stage.events_out": rec.out,
                    "llmpipe.stage.self_time_s": rec.self_s(),
                }
            )
            if error is not None:
                self.seen[id(error)] = error
                self.fail(span, error, recorded=True)
            elif outcome == "ok":
                if self.oi:
                    span.set_status(OK)
                if rec.out:  # its work ended with its last event
                    end = self.ns(rec.last_s)
            for part in rec.parts:
                if part.pending:
                    self.end_part(part, part.error, None)
        except Exception:
            log.debug("telemetry: cannot finish a stage span", exc_info=True)
        finally:
            span.end(end_time=self._after_children(rec, end))

    def part_ended(self, rec: Rec, ctx: Context, outcome: str, error: BaseException | None) -> None:
        """A part's chain ended: a success now; a failure waits for its segment's word."""
        if rec.span is None:
            return
        rec.outcome, rec.error, rec.ended_ns = outcome, error, self.ns(time.perf_counter())
        if outcome in ("ok", "closed"):
            self.end_part(rec, None, None)
        else:
            rec.pending = True
            self.pending[id(ctx)] = (ctx, rec)

    def end_part(self, rec: Rec, error: BaseException | None, then: Event | None) -> None:
        span = rec.span
        if span is None:  # no span, or ended already
            return
        rec.span, rec.pending = None, False
        try:
            attrs: dict[str, Any] = {"llmpipe.outcome": "error" if error else rec.outcome}
            if then is not None:
                attrs.update(then_attributes(then))
            span.set_attributes(attrs)
            if error is not None:
                self.fail(span, error, recorded=False)
            elif rec.outcome == "ok" and self.oi:
                span.set_status(OK)
        except Exception:
            log.debug("telemetry: cannot finish an attempt span", exc_info=True)
        finally:
            span.end(end_time=self._after_children(rec, rec.ended_ns or 0))

    @staticmethod
    def _after_children(rec: Rec, end: int) -> int:
        """``end``, or later if a child ended later: a span contains its children."""
        end = max(end, rec.child_end_ns)
        if rec.parent is not None:
            rec.parent.child_end_ns = max(rec.parent.child_end_ns, end)
        return end

    def note(self, span: Span, ev: Event) -> None:
        """A ``Retrying`` or ``FallingBack`` event as a span event of the stage that gave
        it first (the segment's; the stages it passes through give the same object)."""
        if ev is self.last_note:
            return
        self.last_note = ev
        try:
            if type(ev) is Retrying:
                span.add_event(
                    "retry",
                    {
                        "llmpipe.retry.attempt": ev.attempt,
                        "llmpipe.retry.delay_s": ev.delay_s,
                        "llmpipe.retry.reason": ev.reason,
                    },
                )
            elif type(ev) is FallingBack:
                span.add_event(
                    "fallback",
                    {
                        "llmpipe.fallback.from_model": ev.from_model,
                        "llmpipe.fallback.to_model": ev.to_model,
                        "llmpipe.fallback.reason": ev.reason,
                    },
                )
        except Exception:
            log.debug("telemetry: cannot record a retry or fallback", exc_info=True)

    def fail(self, span: Span, error: BaseException, *, recorded: bool) -> None:
        """Error status and ``error.type``; with ``recorded``, the ``exception`` event too."""
        secret = self.request.api_key
        span.set_attribute(genai.ERROR_TYPE, genai.error_type(error))
        span.set_status(Status(StatusCode.ERROR, genai.scrub(str(error), secret)[:500]))
        if recorded:
            span.add_event("exception", genai.exception_attributes(error, secret))

    def end_pending(self) -> None:
        """The call ends: parts whose segment never said what came next end as they ended."""
        for _ctx, rec in list(self.pending.values()):
            self.end_part(rec, rec.error, None)
        self.pending.clear()
        self.recs.clear()
