"""The wrappers around one stage run and one part, and what they measure (``Rec``).

``run_stage`` is the stage's span lifetime: started on the first pull (so a
chain built and never pulled leaves nothing open), current only around each
pull from the stage (unless the stage is ``contained``), never across a
``yield``, ended once in ``finally`` with its outcome (ok, closed,
cancelled, error), its events in and out, its own time (its pulls less
those of the runs pulled inside them, ``Rec.self_s``) and the time of its
last event. Per event it does only that: two clock readings, a counter, and
the context switch (the context variable's own ``set`` / ``reset``).
``run_part`` is a part's (an attempt's) when it has no stage of its own to
end with: it only passes events on and tells the call how the part ended
(otherwise its last stage's run does, and the part costs nothing per event).
Both report to the call (``telemetry.spans``).
``Bound`` is the instrument a stage run or part hands on to what it chains
or starts, so those are its children; ``then_attributes`` is what a
segment did after a failed part, as span attributes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import Span

from pipeline.context import Context
from pipeline.events import Event, FallingBack, Retrying
from pipeline.secrets import guard_logger
from pipeline.stage import PlainInstrument, Stage

#: the events that become span events of the stage that gave them
NOTED = frozenset({Retrying, FallingBack})

if TYPE_CHECKING:
    from telemetry.spans import CallTelemetry

log = guard_logger("llmpipe.telemetry")

__all__ = [
    "Bound",
    "Count",
    "Rec",
    "aclose",
    "counted",
    "ended_by",
    "run_part",
    "run_stage",
    "then_attributes",
    "watched",
]


#: make a context current, and restore the one before
MakeCurrent = Callable[[OtelContext], Token[OtelContext]]
Restore = Callable[[Token[OtelContext]], None]


def _switch() -> tuple[MakeCurrent, Restore]:
    """How a stage's span becomes current around each pull, and stops being.

    ``opentelemetry.context.attach`` / ``detach`` are three Python calls each
    over one ``ContextVar``; around every pull of every stage that was half of
    what tracing cost per chunk. With the API's default runtime context (a
    ``ContextVar``, the only one the API ships) the variable's own ``set`` /
    ``reset`` do the same thing; with any other, the public functions.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    if isinstance(runtime, ContextVarsRuntimeContext) and isinstance(var, ContextVar):
        return var.set, var.reset
    return otel_context.attach, otel_context.detach


#: ``(make current, restore)``: see ``_switch``
SWITCH = _switch()


class Count:
    """How many events an iterator gave (a stage's events out, its downstream's events in)."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = 0


class Rec(Count):
    """One stage run's or part's measurements, and its span once started."""

    __slots__ = (
        "attempt",
        "attrs",
        "built_ns",
        "built_s",
        "child_end_ns",
        "closes",
        "consumed",
        "current",
        "ended_ns",
        "error",
        "index",
        "kids",
        "last",
        "last_s",
        "name",
        "outcome",
        "parent",
        "part",
        "parts",
        "pending",
        "pull_s",
        "span",
        "up",
    )

    def __init__(
        self,
        name: str,
        index: int,
        up: Count,
        parent: Rec | None,
        attempt: int | None,
        built: tuple[int, float],
        *,
        part: bool = False,
    ) -> None:
        super().__init__()
        self.name = name
        self.index = index
        self.up = up
        self.parent = parent
        self.attempt = attempt
        self.built_ns, self.built_s = built
        self.part = part
        #: the time spent in its pulls (its own work and its upstream's)
        self.pull_s = 0.0
        self.last_s = self.built_s
        #: whether its span is made current around its pulls (``Stage.contained``)
        self.current = True
        #: pulled by a stage run chained onto it (so not by its segment directly)
        self.consumed = False
        #: the stage runs of the inner stages this segment's run chained (in parts or not)
        self.kids: list[Rec] = []
        self.span: Span | None = None
        #: a part's end: how, with what, when; and whether it waits for its segment
        self.outcome = "ok"
        self.error: BaseException | None = None
        self.ended_ns: int | None = None
        self.pending = False
        self.child_end_ns = 0
        #: the parts this segment's run started
        self.parts: list[Rec] = []
        #: the part (and its context) that ends when this stage run ends: it is its last
        self.closes: tuple[Rec, Context] | None = None
        #: a part's attributes (its segment's: a fallback target's model)
        self.attrs: Mapping[str, str | int | float | bool] = {}
        #: a part's last (outermost) stage run
        self.last: Rec | None = None

    def self_s(self) -> float:
        """Its own time: its pulls less those of the runs pulled inside them (its upstream,
        and the outermost stage of each inner chain a segment ran); never negative."""
        nested = self.up.pull_s if isinstance(self.up, Rec) else 0.0
        for kid in self.kids:
            if not kid.consumed:
                nested += kid.pull_s
        return max(self.pull_s - nested, 0.0)


async def run_stage(
    call: CallTelemetry, inner: AsyncIterator[Event], rec: Rec
) -> AsyncIterator[Event]:
    span = call.start_span(rec) if call.recording else None
    if span is None:  # not sampled (or the span could not start): no span, same events
        try:
            async for ev in inner:
                yield ev
        finally:
            await aclose(inner)
        return
    span_ctx = trace.set_span_in_context(span, call.parent)
    make_current, restore = SWITCH
    current = rec.current
    pull, clock = inner.__anext__, time.perf_counter
    outcome, error, last = "ok", None, rec.built_s
    try:
        while True:
            token = make_current(span_ctx) if current else None
            t0 = clock()
            try:
                ev = await pull()
            except StopAsyncIteration:
                break
            finally:
                t1 = clock()
                rec.pull_s += t1 - t0
                try:
                    if token is not None:
                        restore(token)
                except ValueError:  # a token of another context: as ``detach``, logged only
                    log.debug("telemetry: cannot restore the context", exc_info=True)
            last = t1
            rec.out += 1
            if type(ev) in NOTED:
                call.note(span, ev)
            yield ev
    except BaseException as exc:
        outcome, error = ended_by(exc)
        raise
    finally:
        rec.last_s = last
        try:
            await aclose(inner)
        finally:
            call.end_stage(rec, outcome, error)


def run_part(
    call: CallTelemetry, inner: AsyncIterator[Event], rec: Rec, ctx: Context
) -> AsyncIterator[Event]:
    def start() -> None:
        if call.recording:
            call.start_span(rec)

    def done(outcome: str, error: BaseException | None) -> None:
        call.part_ended(rec, ctx, outcome, error)

    return watched(inner, start, done)


async def watched(
    events: AsyncIterator[Event],
    start: Callable[[], None],
    done: Callable[[str, BaseException | None], None],
) -> AsyncIterator[Event]:
    """``events`` as they are: ``start`` on the first pull, and ``done`` told how they
    ended, once, after they were closed (a part's)."""
    start()
    outcome, error = "ok", None
    try:
        async for ev in events:
            yield ev
    except BaseException as exc:
        outcome, error = ended_by(exc)
        raise
    finally:
        try:
            await aclose(events)
        finally:
            done(outcome, error)


def ended_by(exc: BaseException) -> tuple[str, BaseException | None]:
    """A run's outcome from what ended it: the consumer closed it, it was cancelled, or it
    failed (closing and cancelling are not failures)."""
    if isinstance(exc, GeneratorExit):
        return "closed", None
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled", None
    return "error", exc


async def counted(upstream: AsyncIterator[Event], counter: Count) -> AsyncIterator[Event]:
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


def then_attributes(ev: Event) -> dict[str, Any]:
    """What a segment does after a failed part, as attributes: ``llmpipe.then`` is the
    event's type (``retrying``), ``llmpipe.then.<field>`` its values (reason, delay_s)."""
    attrs: dict[str, Any] = {"llmpipe.then": type(ev).__struct_config__.tag}
    for name in ev.__struct_fields__:
        value = getattr(ev, name)
        if isinstance(value, bool | int | float | str):
            attrs[f"llmpipe.then.{name}"] = value
    return attrs


class Bound(PlainInstrument):
    """The instrument of one stage run or part: what it chains or starts is its child."""

    __slots__ = ("call", "rec")

    def __init__(self, call: CallTelemetry, rec: Rec) -> None:
        self.call, self.rec = call, rec

    def stage(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        return self.call.wrap(st, upstream, ctx, self.rec)

    def first_chunk(self, ctx: Context) -> None:
        self.call.first_chunk_in(self.rec)

    def group(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        ctx: Context,
    ) -> AsyncIterator[Event]:
        return self.call.wrap_part(name, attributes, stages, upstream, ctx, self.rec)

    def group_failed(self, ctx: Context, error: BaseException, then: Event) -> None:
        self.call.group_failed(ctx, error, then)
