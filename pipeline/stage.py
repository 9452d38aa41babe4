"""The stage contract: ``Stage``, ``Segment``, ``stage()``; the ``Instrument`` observing runs.

A stage is an async generator function ``(upstream, ctx) -> events``: it pulls
events from ``upstream``, yields events downstream, and passes through every
event it does not handle. A segment is a stage that runs a sequence of inner
stages (``retry`` is one); the pipeline finds stages inside segments by name.
What a stage may use besides its upstream is the ``Context``
(``pipeline.context``); how stages are chained is ``pipeline.runner``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipeline.events import Event
from pipeline.runner import run_stages

if TYPE_CHECKING:
    from pipeline.context import Context

__all__ = [
    "PLAIN",
    "FunctionStage",
    "Instrument",
    "PlainInstrument",
    "Segment",
    "Stage",
    "StageFn",
    "stage",
]

StageFn = Callable[[AsyncIterator[Event], "Context"], AsyncIterator[Event]]


@runtime_checkable
class Stage(Protocol):
    """``name`` identifies the stage in a pipeline; calling it starts one run.

    Optional: ``contained = True`` says the stage's span need not be current
    while its code runs: its code starts no spans of its own, and what it
    logs, or any span started by what it calls, goes under the span current
    around it (the call's root span, or that of the stage pulling it). A
    tracing instrument then skips the context switch around each of its
    pulls, which is most of what tracing costs per event; its span and
    counts are the same. Without it (the default), the stage's span is
    current around every pull.
    """

    @property
    def name(self) -> str: ...

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]: ...


@runtime_checkable
class Segment(Stage, Protocol):
    """A stage that runs inner stages (through ``ctx.run`` so they are wrapped too).

    Optional: ``stands_aside(ctx) -> bool``. A segment that has nothing to do
    for a call (fallback with no target but the request; tool_compat for a
    request without tools) says so, and ``run_stages`` chains its inner
    stages in its place for that call: no run of its own, no span, no cost
    per event. It is asked whenever its chain is built, before anything runs
    in it (once per call; inside ``retry``, once per attempt).
    """

    @property
    def stages(self) -> tuple[Stage, ...]: ...

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment: ...


@dataclass(frozen=True, slots=True)
class FunctionStage:
    """A named stage around a plain async generator function."""

    name: str
    fn: StageFn
    contained: bool = False

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self.fn(upstream, ctx)


def stage(name: str, fn: StageFn, *, contained: bool = False) -> Stage:
    """Name an async generator function as a stage (``contained``: see ``Stage``)."""
    return FunctionStage(name, fn, contained)


@runtime_checkable
class Instrument(Protocol):
    """How a pipeline observes its runs; telemetry supplies one that adds spans.

    Everything an instrument learns, it is told here, never guessed from a
    stage's name:

    - ``run`` starts one call: it chains the pipeline's stages onto the
      source (through ``run_stages``) and returns the events the consumer
      sees. It may put a per-call instrument in ``ctx.instrument`` first (so
      it decides once per call whether to observe at all);
    - ``stage`` starts one stage run; it is called by ``run_stages``, the one
      place where stages are chained. ``ctx.attempt`` is the attempt of the
      retry segment the run belongs to (``None`` outside one);
    - ``group`` chains a segment's inner stages for one named run of them,
      when the segment runs them more than once (``Context.run(...,
      group=(name, attributes))``: retry's ``"attempt 2"``, one fallback
      target) and returns its events; an instrument that traces gives the
      run a span of its own, under the segment's, parent of the inner
      stages' spans;
    - ``group_failed`` is called by a segment whose group (run with ``ctx``)
      failed with ``error`` and which carries on as ``then`` says (retry: its
      ``Retrying`` event, before it is yielded). A segment that raises
      instead need say nothing: its own run ends with the error;
    - ``first_chunk`` is called by dispatch from inside its own pull, when the
      first chunk of an answer arrives (once per request it sends), with the
      context of that run.

    Subclass ``PlainInstrument`` to observe only some of these.
    """

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]: ...

    def stage(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]: ...

    def group(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        ctx: Context,
    ) -> AsyncIterator[Event]: ...

    def first_chunk(self, ctx: Context) -> None: ...

    def group_failed(self, ctx: Context, error: BaseException, then: Event) -> None: ...


class PlainInstrument:
    """Observes nothing and costs nothing: stages are chained as they are."""

    __slots__ = ()

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        return run_stages(stages, upstream, ctx)

    def stage(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        return st(upstream, ctx)

    def group(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool],
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        ctx: Context,
    ) -> AsyncIterator[Event]:
        return run_stages(stages, upstream, ctx)

    def first_chunk(self, ctx: Context) -> None:
        return None

    def group_failed(self, ctx: Context, error: BaseException, then: Event) -> None:
        return None


#: the default instrument: none
PLAIN: Instrument = PlainInstrument()
