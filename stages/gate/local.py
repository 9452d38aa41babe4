"""Per-endpoint gates: calls to one provider endpoint back off together.

When one call is told to wait (a 429 with Retry-After), every call to the
same endpoint waits until then, instead of each finding out with a request
of its own. An optional bound on calls in flight per endpoint keeps a burst
from hitting the server all at once, and an optional token bucket
(``Rate``) spaces calls out. This is the in-process gate (``stages.gate``
says how one is chosen; ``stages.gate.redis`` shares the same rules across
processes). Gates live in the pipeline's shared state, one set per event
loop (asyncio primitives belong to one loop).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pipeline.context import SharedState
from pipeline.request import Request

__all__ = ["EndpointGate", "Rate", "endpoint_key", "gate_for"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: ``burst`` calls at once, then ``per_s`` a second."""

    per_s: float
    burst: int

    @property
    def interval(self) -> float:
        return 1.0 / self.per_s


class EndpointGate:
    """The shared wait (``blocked_until``), in-flight bound and bucket of one endpoint."""

    def __init__(self, max_in_flight: int | None, rate: Rate | None = None) -> None:
        self.blocked_until = 0.0
        self.rate = rate
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._tat = 0.0  # the bucket's "theoretical arrival time" (GCRA)

    def block(self, until: float) -> None:
        """Ask every call to this endpoint to wait until ``until`` (clock time)."""
        self.blocked_until = max(self.blocked_until, until)

    async def pause(self, seconds: float, clock: Clock) -> None:
        """``block`` for ``seconds`` from now (the ``stages.gate.Gate`` form)."""
        self.block(clock() + seconds)

    async def wait_open(self, clock: Clock, sleep: Sleep) -> None:
        # Loop: another call may push blocked_until further while we wait.
        while (remaining := self.blocked_until - clock()) > 0:
            await sleep(remaining)

    def reserve(self, now: float) -> float:
        """Take the bucket's next turn; the seconds to wait for it and any block (GCRA).

        Turns start no earlier than the end of a block, so when a block
        ends, ``burst`` calls go at once and the rest follow at the rate.
        """
        rate = self.rate
        blocked = self.blocked_until - now
        if rate is None:
            return max(0.0, blocked)
        self._tat = max(self._tat, now, self.blocked_until) + rate.interval
        return max(0.0, self._tat - rate.burst * rate.interval - now, blocked)

    async def admit(self, clock: Clock, sleep: Sleep) -> None:
        """Wait for a turn of the bucket and the end of any block (the slot is held).

        A block that came while waiting for a turn voids the turn: a new one is
        taken after the block, so the calls held up by it do not all go at once.
        """
        while True:
            wait = self.reserve(clock())
            if wait > 0:
                await sleep(wait)
            if self.blocked_until <= clock():
                return
            await self.wait_open(clock, sleep)

    @asynccontextmanager
    async def slot(
        self,
        clock: Clock,
        sleep: Sleep,
        admit: Callable[[Clock, Sleep], Awaitable[None]] | None = None,
    ) -> AsyncIterator[None]:
        """Wait until the endpoint is open and a slot is free; hold the slot meanwhile.

        ``admit`` (default: this gate's own) decides when the call may go once
        it holds a slot; the Redis gate passes its shared one.
        """
        slots = self._slots
        while True:
            await self.wait_open(clock, sleep)
            if slots is None:
                break
            await slots.acquire()
            if self.blocked_until <= clock():
                break
            # Blocked while we queued: give the slot back rather than sleep on it.
            slots.release()
        try:
            await (admit or self.admit)(clock, sleep)
            yield
        finally:
            if slots is not None:
                slots.release()


def endpoint_key(req: Request) -> str:
    """Calls share a gate when they go to the same base URL (or provider)."""
    if req.api_base:
        return req.api_base.rstrip("/")
    return req.model.split("/", 1)[0] if "/" in req.model else req.model


_GateMap = weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, EndpointGate]]


def gate_for(
    shared: SharedState, req: Request, max_in_flight: int | None, rate: Rate | None = None
) -> EndpointGate:
    loops = shared.setdefault("retry.gates", _GateMap)
    per_loop = loops.setdefault(asyncio.get_running_loop(), {})
    key = f"{endpoint_key(req)}|{max_in_flight}|{rate}"
    gate = per_loop.get(key)
    if gate is None:
        gate = per_loop[key] = EndpointGate(max_in_flight, rate)
    return gate
