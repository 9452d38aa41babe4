"""Spans of one call: a root span ``chat {model}`` and a child span per stage, by wrapping.

Stage bodies hold no span code: ``CallTelemetry`` is the call's instrument
(``ctx.instrument``, put there by ``TelemetryInstrument``), so ``run_stages``
hands it every stage to wrap, as a ``StageRun`` (``telemetry.stage_spans``:
a span per stage run, current only around its pulls). This module is the
call: the root span (GenAI attributes, the answer's output when captured,
the outcome), its metrics, and what stage runs share. A group of a
segment's inner stages (one fallback target) is a span of its own
(``telemetry.groups``).

What telemetry knows of attempts and chunks it is told: a stage run's attempt
is ``ctx.attempt`` (the retry segment's copy of the context), and dispatch
calls ``first_chunk`` from inside its own pull when an answer's first chunk
arrives, so the time to first chunk goes on the span of the stage being
pulled then, and the first of the call on the root. Telemetry never breaks
the pipeline: its own failures are logged at debug level.
"""

from __future__ import annotations

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
from telemetry.stage_spans import Counter, StageRun, aclose, counted, outcome_of

__all__ = ["CallTelemetry"]

log = guard_logger("llmpipe.telemetry")


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
        self.recs: dict[AsyncIterator[Event], StageRun] = {}
        self.nested = 0.0
        #: the stage run whose pull is in progress, innermost (whom ``first_chunk`` is about)
        self.pulling: StageRun | None = None
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
            counter = Counter()
            upstream = counted(upstream, counter)
            index = 0
        else:
            counter, index = up, up.index + 1
        # Inside a segment's pull its span is current: it is the parent.
        parent = self.spans.get(id(trace.get_current_span()))
        attempt = ctx.attempt.number if ctx.attempt is not None else None
        run = StageRun(self, st.name, index, counter, parent, attempt)
        wrapped = run.run(st(upstream, ctx))
        self.recs[wrapped] = run
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
        except BaseException as exc:
            outcome, error = outcome_of(exc)
            raise
        finally:
            try:
                await aclose(events)
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
                    self.fail(root, error)
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

    def fail(self, span: Span, error: BaseException) -> None:
        """Error status and ``error.type``; the exception event only where it was first seen."""
        secret = self.request.api_key
        span.set_attribute(genai.ERROR_TYPE, genai.error_type(error))
        span.set_status(Status(StatusCode.ERROR, genai.scrub(str(error), secret)[:500]))
        if error is not self.last_error:
            self.last_error = error
            span.add_event("exception", genai.exception_attributes(error, secret))
