"""What a stage may use besides its upstream: ``Context``, ``Attempt``, ``SharedState``.

One ``Context`` per request, made by the pipeline. A segment that runs its
inner stages more than once (``retry``) hands each run its own copy
(``ctx.for_attempt``) carrying an ``Attempt``, so what belongs to one attempt
(its number, the chunks recorded for a dump) is never shared with the next
and no stage mutates the context another stage sees.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pipeline.events import Chunk, Event
from pipeline.fallbacks import TargetHealth
from pipeline.limits import UsageMeter
from pipeline.policy import RetryPolicy
from pipeline.profiles import Profile
from pipeline.request import Request
from pipeline.runner import run_stages
from pipeline.stage import PLAIN, Instrument, Stage
from pipeline.tokens import TokenCounter, estimate_tokens

__all__ = ["Attempt", "Context", "SharedState"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt of a segment's inner stages (the retry segment's), as they all see it.

    ``number`` counts from 1. ``recording``, when failed-request dumps are on,
    receives every chunk dispatch produced in this attempt (``None``: nothing
    is recorded).
    """

    number: int
    recording: list[Chunk] | None = None


class SharedState:
    """State that outlives one request: provider gates, remembered quirks.

    One per pipeline (shared by the pipelines derived from it); each stage
    keeps its own entry under its own key. Safe to use from several threads
    (``complete()`` may run a call on a worker thread). An entry that holds
    something per event loop that must be closed (a Redis client) has an
    ``aclose()`` that closes what it holds for the running loop:
    ``Pipeline.aclose()`` calls it (``closables``).
    """

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._lock = threading.Lock()

    def setdefault(self, key: str, factory: Callable[[], T]) -> T:
        """The entry under ``key``, created by ``factory`` on first use."""
        with self._lock:
            if key not in self._items:
                self._items[key] = factory()
            value: T = self._items[key]
            return value

    def closables(self) -> list[Callable[[], Awaitable[object]]]:
        """The ``aclose`` of every entry that has one, in the order they were made."""
        with self._lock:
            entries = list(self._items.values())
        return [close for e in entries if callable(close := getattr(e, "aclose", None))]


@dataclass(slots=True, kw_only=True)
class Context:
    """Everything a stage may use besides its upstream, for one request.

    ``request`` is the request as the caller gave it (validated); stages see
    the request as shaped so far as the ``Request`` event in their upstream.
    ``sleep`` and ``clock`` are injectable so tests never really wait.
    ``count_tokens`` estimates a request's tokens (for dumps and usage
    backfill) off the event loop. ``attempt`` is set in the copies a retry
    segment hands its inner stages, one per attempt (``None`` outside).
    ``health`` is set in the copies a fallback segment hands its inner stages,
    one per target: dispatch asks it before each request and tells it of each
    failure (cool-downs). ``meter`` counts requests and usage against the
    pipeline's limits (``None``: no limits).
    """

    request: Request
    profile: Profile
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    shared: SharedState = field(default_factory=SharedState)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    clock: Callable[[], float] = time.monotonic
    instrument: Instrument = PLAIN
    count_tokens: TokenCounter = estimate_tokens
    attempt: Attempt | None = None
    health: TargetHealth | None = None
    meter: UsageMeter | None = None

    def run(
        self,
        stages: tuple[Stage, ...],
        upstream: AsyncIterator[Event],
        *,
        group: tuple[str, Mapping[str, str | int | float | bool]] | None = None,
    ) -> AsyncIterator[Event]:
        """Chain ``stages`` onto ``upstream``; segments call this for their inner stages.

        ``group`` (a name and attributes) makes this run of the inner stages
        one unit for the instrument (``Instrument.group``) when a segment runs
        them more than once (retry: ``("attempt 2", {})``; fallback: one
        target): telemetry gives it a span of its own, under the segment's.
        """
        if group is not None:
            return self.instrument.group(group[0], group[1], stages, upstream, self)
        return run_stages(stages, upstream, self)

    def for_attempt(self, attempt: Attempt) -> Context:
        """This context for one attempt of a segment's inner stages (a shallow copy)."""
        return self.replace(attempt=attempt)

    def replace(self, **changes: Any) -> Context:
        """A shallow copy with ``changes``, as ``dataclasses.replace`` but a few times
        faster (it is made per attempt and, when tracing, per stage run)."""
        new = object.__new__(Context)
        for name in _FIELDS:
            object.__setattr__(
                new, name, changes.pop(name) if name in changes else getattr(self, name)
            )
        if changes:
            raise TypeError(f"Context has no field {next(iter(changes))!r}")
        return new


_FIELDS = tuple(f.name for f in dataclasses.fields(Context))
