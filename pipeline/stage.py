"""The stage contract: ``Stage``, ``Segment``, ``Context`` and ``stage()``.

A stage is an async generator function ``(upstream, ctx) -> events``: it pulls
events from ``upstream``, yields events downstream, and passes through every
event it does not handle. A segment is a stage that runs a sequence of inner
stages (``retry`` is one); the pipeline finds stages inside segments by name.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from pipeline.events import Chunk, Event
from pipeline.policy import RetryPolicy
from pipeline.profiles import Profile
from pipeline.request import Request
from pipeline.secrets import hold, scrub
from pipeline.tokens import TokenCounter, estimate_tokens

__all__ = [
    "PLAIN",
    "Context",
    "FunctionStage",
    "Instrument",
    "PlainInstrument",
    "Segment",
    "SharedState",
    "Stage",
    "StageFn",
    "TokenCounter",
    "closing",
    "once",
    "run_stages",
    "stage",
]

T = TypeVar("T")

StageFn = Callable[[AsyncIterator[Event], "Context"], AsyncIterator[Event]]


class closing:
    """``async with closing(upstream) as events``: close ``upstream`` on leaving.

    Like ``contextlib.aclosing``, but for any async iterator: one without
    ``aclose`` (a plain iterator class, an aiostream stream) is left as is.
    """

    __slots__ = ("events",)

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self.events = events

    async def __aenter__(self) -> AsyncIterator[Event]:
        return self.events

    async def __aexit__(self, *exc_info: object) -> None:
        close = getattr(self.events, "aclose", None)
        if close is not None:
            await close()


@runtime_checkable
class Stage(Protocol):
    """``name`` identifies the stage in a pipeline; calling it starts one run."""

    @property
    def name(self) -> str: ...

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]: ...


@runtime_checkable
class Segment(Stage, Protocol):
    """A stage that runs inner stages (through ``ctx.run`` so they are wrapped too)."""

    @property
    def stages(self) -> tuple[Stage, ...]: ...

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment: ...


@dataclass(frozen=True, slots=True)
class FunctionStage:
    """A named stage around a plain async generator function."""

    name: str
    fn: StageFn

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self.fn(upstream, ctx)


def stage(name: str, fn: StageFn) -> Stage:
    """Name an async generator function as a stage."""
    return FunctionStage(name, fn)


@runtime_checkable
class Instrument(Protocol):
    """How a pipeline observes its runs; telemetry supplies one that adds spans.

    ``run`` starts one call: it chains the pipeline's stages onto the source
    (through ``run_stages``) and returns the events the consumer sees. It may
    put a per-call instrument in ``ctx.instrument`` first (so it decides once
    per call whether to observe at all). ``stage`` starts one stage run; it is
    called by ``run_stages``, the one place where stages are chained.
    """

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]: ...

    def stage(
        self, st: Stage, upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]: ...


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


#: the default instrument: none
PLAIN: Instrument = PlainInstrument()


class SharedState:
    """State that outlives one request: provider gates, remembered quirks.

    One per pipeline (shared by the pipelines derived from it); each stage
    keeps its own entry under its own key. Safe to use from several threads
    (``complete()`` may run a call on a worker thread).
    """

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._loop_releases: dict[str, Callable[[], Awaitable[None]]] = {}
        self._lock = threading.Lock()

    def setdefault(self, key: str, factory: Callable[[], T]) -> T:
        """The entry under ``key``, created by ``factory`` on first use."""
        with self._lock:
            if key not in self._items:
                self._items[key] = factory()
            value: T = self._items[key]
            return value

    def on_loop_end(self, key: str, release: Callable[[], Awaitable[None]]) -> None:
        """Have ``Pipeline.release_loop`` await ``release`` (once per ``key``).

        For what a stage keeps per event loop, such as pooled connections,
        which must be closed before a loop the pipeline made (``complete``)
        ends, not left to the garbage collector.
        """
        with self._lock:
            self._loop_releases.setdefault(key, release)

    def loop_releases(self) -> list[Callable[[], Awaitable[None]]]:
        with self._lock:
            return list(self._loop_releases.values())


@dataclass(slots=True, kw_only=True)
class Context:
    """Everything a stage may use besides its upstream, for one request.

    ``request`` is the request as the caller gave it (validated); stages see
    the request as shaped so far as the ``Request`` event in their upstream.
    ``sleep`` and ``clock`` are injectable so tests never really wait.
    ``count_tokens`` estimates a request's tokens (for dumps and usage
    backfill) off the event loop. ``recording``, when the retry segment sets
    it to a list, receives every chunk dispatch produces in the current
    attempt (for failed-request dumps).
    """

    request: Request
    profile: Profile
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    shared: SharedState = field(default_factory=SharedState)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    instrument: Instrument = PLAIN
    count_tokens: TokenCounter = estimate_tokens
    recording: list[Chunk] | None = None

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event]
    ) -> AsyncIterator[Event]:
        """Chain ``stages`` onto ``upstream``; segments call this for their inner stages."""
        return run_stages(stages, upstream, self)


def run_stages(
    stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
) -> AsyncIterator[Event]:
    """The one place where stages are chained, and so the one place they are wrapped.

    The chain closes by construction: when it ends, fails or is closed, every
    stage's generator is closed, outermost first, even one whose stage forgot
    to close its own upstream. An exception leaves it scrubbed of secrets
    (``pipeline.secrets.scrub``), whichever stage raised it.
    """
    chain = [upstream]
    start = ctx.instrument.stage
    for st in stages:
        chain.append(start(st, chain[-1], ctx))
    return _closing(chain, ctx.request.api_key)


async def once(event: Event) -> AsyncIterator[Event]:
    """An upstream of one event: how runs and segment attempts start."""
    yield event


async def _closing(chain: list[AsyncIterator[Event]], secret: str | None) -> AsyncIterator[Event]:
    """Runs the chain; what leaves it, events or an exception, is safe to show.

    While it runs, the request's key is masked in every guarded logger
    (``secrets.hold``); an exception leaving it is scrubbed, chain and all.
    """
    try:
        with hold(secret):
            async for ev in chain[-1]:
                yield ev
    except Exception as exc:
        scrub(exc, secret)
        raise
    finally:
        for events in reversed(chain):
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
