"""The root span of one call (``chat {model}``) and the call's metrics.

``root_run`` wraps the whole chain of stages: it starts the root span (GenAI
request attributes, OpenInference's beside them when on, the input when
content capture is on), feeds every event the consumer is given into the
call's ``ResponseBuilder``, and at the end puts on it what the consumer got
(finish, usage, the time to its first chunk, the output when captured) and
how the call ended, then records the metrics. Only what the consumer got
counts: a discarded attempt's chunks never reach this wrapper.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.trace import SpanKind, Status, StatusCode

from pipeline.events import Event, Finish, ReasoningDelta, Retrying, TextDelta, ToolCall
from pipeline.secrets import guard_logger
from telemetry import genai
from telemetry import openinference as oi
from telemetry.runs import SWITCH, aclose, ended_by

if TYPE_CHECKING:
    from telemetry.spans import CallTelemetry

__all__ = ["OK", "root_run"]

log = guard_logger("llmpipe.telemetry")

OK = Status(StatusCode.OK)
#: the events that are the answer's content (what a consumer may have shown or acted on)
CONTENT = frozenset({TextDelta, ReasoningDelta, ToolCall})


def root_run(call: CallTelemetry, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """The call's events as they are, inside its root span: started on the first pull
    (a chain built and never run opens nothing), current around every pull (what
    runs in the call with no span of its own current, ``contained`` stages, runs
    under it), ended once when the events end."""
    return _root(call, events)


async def _root(call: CallTelemetry, events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """Without content capture, of the answer it notes only what the span and the
    metrics need (whether any content was delivered, the ``Finish``, the retries),
    inline: a call per event to ``ResponseBuilder.feed`` was a tenth of what tracing
    cost."""
    _start(call)
    root = call.root  # None: metrics only, or the span could not start
    current = (
        trace.set_span_in_context(root, call.parent)
        if root is not None and call.recording  # not recording: not sampled
        else None
    )
    answer = call.answer
    feed = answer.feed if call.capture else None
    make_current, restore = SWITCH
    pull = events.__anext__
    outcome, error = "ok", None
    try:
        while True:
            token = make_current(current) if current is not None else None
            try:
                ev = await pull()
            except StopAsyncIteration:
                break
            finally:
                try:
                    if token is not None:
                        restore(token)
                except ValueError:  # a token of another context: as ``detach``, logged only
                    log.debug("telemetry: cannot restore the context", exc_info=True)
            if feed is not None:
                feed(ev)
            else:
                kind = type(ev)
                if kind in CONTENT:
                    answer.delivered = True
                elif kind is Finish:
                    answer.finish = ev  # type: ignore[assignment]
                elif kind is Retrying:
                    answer.retries += 1
            yield ev
    except BaseException as exc:
        outcome, error = ended_by(exc)
        raise
    finally:
        try:
            await aclose(events)
        finally:
            _end(call, outcome, error)


def _start(call: CallTelemetry) -> None:
    try:
        req, profile = call.request, call.profile
        call.attrs = genai.request_attributes(req, profile)
        if call.tracer is None:
            return
        model = call.attrs[ga.GEN_AI_REQUEST_MODEL]
        root = call.tracer.start_span(
            f"{genai.OPERATION} {model}",
            context=call.parent,
            kind=SpanKind.CLIENT,
            attributes=call.attrs,
            start_time=call.started_ns,
        )
        call.root = root
        call.recording = root.is_recording()
        if call.recording:
            root.set_attributes(genai.request_span_attributes(req))
            if call.oi:
                provider = call.attrs[ga.GEN_AI_PROVIDER_NAME]
                root.set_attributes(oi.request(req, model, provider))
            if call.capture:
                root.set_attributes(genai.input_content(req))
                if call.oi:
                    root.set_attributes(oi.input_content(req))
    except Exception:
        log.debug("telemetry: cannot start the call's span", exc_info=True)
        call.recording = False


def _end(call: CallTelemetry, outcome: str, error: BaseException | None) -> None:
    now = time.perf_counter()
    duration = now - call.started
    answer = call.answer
    # the time to the first chunk of the answer the consumer got, if it got one
    ttfc = call.ttfc if answer.delivered or answer.finish is not None else None
    call.end_pending()
    root = call.root
    try:
        if root is not None and call.recording:
            attrs: dict[str, Any] = {"llmpipe.outcome": outcome, "llmpipe.retries": answer.retries}
            if answer.finish is not None:
                attrs.update(genai.response_attributes(answer.finish))
                if call.oi:
                    attrs.update(oi.response(answer.finish))
            if ttfc is not None:
                attrs[ga.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = ttfc
            if call.capture and (answer.delivered or answer.finish is not None):
                text, calls = answer.text, answer.tool_calls
                attrs.update(genai.output_content(text, calls, answer.finish))
                if call.oi:
                    attrs.update(oi.output_content(text, calls))
            root.set_attributes(attrs)
            if error is not None:
                call.fail(root, error, recorded=id(error) not in call.seen)
            elif outcome == "ok" and call.oi:
                root.set_status(OK)
    except Exception:
        log.debug("telemetry: cannot finish the call's span", exc_info=True)
    finally:
        call.seen.clear()
        if root is not None:
            root.end(end_time=call.ns(now))
    if call.meters is not None:
        try:
            call.meters.record(
                call.attrs,
                duration_s=duration if outcome in ("ok", "error") else None,
                ttfc_s=ttfc,
                finish=answer.finish,
                error_type=genai.error_type(error) if error is not None else None,
            )
        except Exception:
            log.debug("telemetry: cannot record the call's metrics", exc_info=True)
