"""Per-endpoint gates: calls to one provider endpoint back off together.

When one call is told to wait (a 429 with Retry-After), every call to the
same endpoint waits until then, instead of each finding out with a request
of its own. An optional bound on calls in flight per endpoint keeps a burst
from hitting the server all at once. Gates live in the pipeline's shared
state, one set per event loop (asyncio primitives belong to one loop).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from pipeline.request import Request
from pipeline.stage import SharedState

__all__ = ["EndpointGate", "endpoint_key", "gate_for"]


class EndpointGate:
    """The shared wait (``blocked_until``) and in-flight bound of one endpoint."""

    def __init__(self, max_in_flight: int | None) -> None:
        self.blocked_until = 0.0
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None

    def block(self, until: float) -> None:
        """Ask every call to this endpoint to wait until ``until`` (clock time)."""
        self.blocked_until = max(self.blocked_until, until)

    async def wait_open(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        # Loop: another call may push blocked_until further while we wait.
        while (remaining := self.blocked_until - clock()) > 0:
            await sleep(remaining)

    @asynccontextmanager
    async def slot(
        self, clock: Callable[[], float], sleep: Callable[[float], Awaitable[None]]
    ) -> AsyncIterator[None]:
        """Wait until the endpoint is open and a slot is free; hold the slot meanwhile."""
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


def gate_for(shared: SharedState, req: Request, max_in_flight: int | None) -> EndpointGate:
    loops = shared.setdefault("retry.gates", _GateMap)
    per_loop = loops.setdefault(asyncio.get_running_loop(), {})
    key = f"{endpoint_key(req)}|{max_in_flight}"
    gate = per_loop.get(key)
    if gate is None:
        gate = per_loop[key] = EndpointGate(max_in_flight)
    return gate
