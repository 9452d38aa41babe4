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

``stall_decision`` is the rule as a pure function, tested with numbers;
``StallGuard`` applies it to every pull of a stream with one timer (dispatch
bounds each pull from a backend with it).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

__all__ = [
    "CPU_SAMPLE_S",
    "GRACE_PASSES",
    "LAG_TOLERANCE_S",
    "StallGuard",
    "Stalled",
    "stall_decision",
    "within",
]

T = TypeVar("T")

#: timer lateness (and leftover credit) below this is the loop's ordinary jitter
LAG_TOLERANCE_S = 0.002
#: loop passes between the final timer and giving up (readable data wakes the reader)
GRACE_PASSES = 2
#: how often (at most) a ``StallGuard`` reads the thread's CPU clock (a system call)
CPU_SAMPLE_S = 0.01


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


class StallGuard:
    """``within`` for the pulls of one stream, one after another, with one timer.

    ``await guard.pull(awaitable, seconds)`` waits as ``within`` does, by the
    same rules, at a fraction of the cost per pull: instead of a timer, a
    cancel scope and a CPU-clock read for every pull (about 10 µs, most of
    what a fast backend spends on a chunk), one timer serves the whole
    stream and is moved only when it fires while a pull is still within its
    time; the thread's CPU clock is read at most every ``CPU_SAMPLE_S``
    (so up to that much more may be given back). Only one pull at a time;
    ``close()`` drops the timer when the stream is done.
    """

    __slots__ = (
        "_cancelling",
        "_cpu0",
        "_cpu_at",
        "_due",
        "_given",
        "_handle",
        "_lag",
        "_loop",
        "_passes",
        "_pulling",
        "_seconds",
        "_serial",
        "_stalled",
        "_task",
        "_timer_at",
    )

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handle: asyncio.Handle | None = None
        self._timer_at = 0.0
        self._task: asyncio.Task[Any] | None = None
        self._pulling = False
        self._serial = 0
        self._stalled = False
        self._cancelling = 0
        self._passes = GRACE_PASSES
        self._seconds = self._due = self._given = self._lag = 0.0
        self._cpu0 = 0.0
        self._cpu_at = -math.inf

    async def pull(self, awaitable: Awaitable[T], seconds: float | None) -> T:
        """``await awaitable``, raising ``Stalled`` after ``seconds`` of free waiting."""
        if seconds is None:
            return await awaitable
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._cpu_at >= CPU_SAMPLE_S:
            self._cpu0, self._cpu_at = time.thread_time(), now
        due = now + seconds
        self._seconds, self._due, self._given, self._lag = seconds, due, 0.0, 0.0
        self._task = asyncio.current_task(loop)
        self._serial += 1
        if self._handle is None or self._timer_at > due:
            self._arm(due)
        self._pulling = ours = True
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not self._stalled:
                raise
        finally:
            self._pulling = False
            if self._stalled:  # we cancelled the task: take our cancellation back
                self._stalled = False
                task = self._task
                if task is not None and task.uncancel() > self._cancelling:
                    ours = False  # someone else cancelled it too: theirs wins
        if not ours:
            raise asyncio.CancelledError
        raise Stalled(f"nothing within {seconds}s")

    def close(self) -> None:
        """Drop the timer (the stream is done)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self, at: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        assert self._loop is not None
        self._handle, self._timer_at = self._loop.call_at(at, self._fire), at

    def _fire(self) -> None:
        self._handle = None
        if not self._pulling:  # between pulls: the next one arms the timer again
            return
        if self._timer_at < self._due:  # set for an earlier pull: move it to this one's
            self._arm(self._due)
            return
        assert self._loop is not None
        now = self._loop.time()
        late = now - self._due
        if late > LAG_TOLERANCE_S:
            self._lag += late
        busy = max(time.thread_time() - self._cpu0, self._lag)
        verdict, due = stall_decision(now, self._due, busy, self._given, self._seconds)
        if verdict == "extend":
            self._given += due - max(self._due, now)
            self._due = due
            self._arm(due)
        else:  # let readable sockets wake their readers first
            self._passes = GRACE_PASSES
            self._handle = self._loop.call_soon(self._expire, self._serial)
            self._timer_at = now

    def _expire(self, serial: int) -> None:
        self._handle = None
        if serial != self._serial or not self._pulling:  # that pull ended in time
            if self._pulling:
                self._arm(self._due)
            return
        self._passes -= 1
        if self._passes > 0:
            assert self._loop is not None
            self._handle = self._loop.call_soon(self._expire, serial)
            return
        task = self._task
        if task is not None:
            self._cancelling = task.cancelling()
            self._stalled = True
            task.cancel()


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``await awaitable``, raising ``Stalled`` after ``seconds`` of free waiting
    (``None``: no limit); busy and blocked time is not counted (see the module)."""
    if seconds is None:
        return await awaitable
    guard = StallGuard()
    try:
        return await guard.pull(awaitable, seconds)
    finally:
        guard.close()
