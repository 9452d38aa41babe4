"""``FakeClock``: virtual time for ``Pipeline(sleep=..., clock=...)``."""

from __future__ import annotations

import asyncio

__all__ = ["FakeClock"]


class FakeClock:
    """Virtual time for ``Pipeline(sleep=..., clock=...)``: sleeping takes no time.

    ``sleep(d)`` records ``d``, moves the clock ``d`` forward and yields to
    the event loop once, so backoffs run in microseconds and tests can assert
    exactly how long the pipeline would have waited (``sleeps``).
    """

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)
