"""Timeouts that measure the wait for bytes, not the time our own process was busy.

A plain ``asyncio.timeout`` around a network read trips falsely when the process is
starved of CPU or the event loop is busy: the bytes arrived in time, but the timer
callback runs in the same loop pass as the socket's read callback, before the
reader could resume, so the read is cancelled with its data already in hand; or a
long line is still being parsed (our CPU, not the provider's silence) when the
timer runs out.

``within`` counts only the time the event loop was free to wait:

- **busy time is given back**: the loop thread's own CPU time during the wait
  (parsing, other calls' work on the same loop) and the time the loop could not
  run at all (how late the timer fired: a blocked loop, a starved process) extend
  the deadline, up to the timeout itself in total, so a stalled provider is still
  given up on after at most about twice the timeout, however busy the process;
- **I/O first**: when the timer finally fires, the decision waits two more loop
  passes, so data that is already readable wakes its reader before it is given up.

``stall_decision`` is the rule as a pure function, tested with numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Literal, TypeVar

__all__ = ["GRACE_PASSES", "LAG_TOLERANCE_S", "Stalled", "stall_decision", "within"]

T = TypeVar("T")

#: timer lateness (and leftover credit) below this is the loop's ordinary jitter
LAG_TOLERANCE_S = 0.002
#: loop passes between the final timer and giving up (readable data wakes the reader)
GRACE_PASSES = 2


class Stalled(TimeoutError):
    """``within`` gave up waiting (and not some ``TimeoutError`` from the awaitable)."""


def stall_decision(
    now: float, due: float, busy: float, given: float, seconds: float
) -> tuple[Literal["extend", "expire"], float]:
    """What a stall timer due at ``due`` does when it runs at ``now``.

    ``busy``: how much of the wait so far the loop was not free to wait (its own
    CPU time, or timer lateness); ``given``: how much was given back already.
    Returns ``("extend", new_due)`` while busy time is still owed (at most
    ``seconds`` in all), counted from ``now`` when the timer ran late; else
    ``("expire", due)``.
    """
    owed = min(busy, seconds) - given
    if owed > LAG_TOLERANCE_S:
        return "extend", max(due, now) + owed
    return "expire", due


class _StallTimer:
    """Fires ``scope`` (an ``asyncio.timeout``) after ``seconds`` of free waiting."""

    __slots__ = (
        "_cpu0",
        "_due",
        "_given",
        "_handle",
        "_lag",
        "_loop",
        "_passes",
        "_scope",
        "_seconds",
    )

    def __init__(
        self, loop: asyncio.AbstractEventLoop, scope: asyncio.Timeout, seconds: float
    ) -> None:
        self._loop, self._scope, self._seconds = loop, scope, seconds
        self._cpu0 = time.thread_time()
        self._due = loop.time() + seconds
        self._given = self._lag = 0.0
        self._passes = GRACE_PASSES
        self._handle: asyncio.Handle = loop.call_at(self._due, self._fire)

    def _fire(self) -> None:
        now = self._loop.time()
        late = now - self._due
        if late > LAG_TOLERANCE_S:
            self._lag += late
        busy = max(time.thread_time() - self._cpu0, self._lag)
        verdict, due = stall_decision(now, self._due, busy, self._given, self._seconds)
        if verdict == "extend":
            self._given += due - max(self._due, now)
            self._due = due
            self._handle = self._loop.call_at(due, self._fire)
        else:  # let readable sockets wake their readers first
            self._handle = self._loop.call_soon(self._expire)

    def _expire(self) -> None:
        self._passes -= 1
        if self._passes > 0:
            self._handle = self._loop.call_soon(self._expire)
        else:
            self._scope.reschedule(self._loop.time())

    def cancel(self) -> None:
        self._handle.cancel()


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``await awaitable``, raising ``Stalled`` after ``seconds`` of free waiting
    (``None``: no limit); busy and blocked time is not counted (see the module)."""
    if seconds is None:
        return await awaitable
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as scope:
            timer = _StallTimer(loop, scope, seconds)
            try:
                return await awaitable
            finally:
                timer.cancel()
    except TimeoutError:
        if not scope.expired():
            raise
    raise Stalled(f"nothing within {seconds}s")
