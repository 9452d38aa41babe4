"""The ways to consume a pipeline run: a closing event stream, a ``Response``, or blocking.

``EventStream`` is what ``Pipeline.stream`` returns: an async context manager
whose exit closes every stage (and so the HTTP response), whatever ended the
block. ``collect`` folds events into a ``Response`` (``ResponseBuilder``)
once, at the end, instead of carrying a growing snapshot on every delta.
``run_sync`` is how ``complete()`` blocks, inside a running loop too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import AsyncIterator, Callable, Coroutine
from types import TracebackType
from typing import Any, TypeVar

from pipeline.errors import PipelineMisuse
from pipeline.events import Event
from pipeline.response import Response, ResponseBuilder

__all__ = ["EventStream", "collect", "run_sync"]

T = TypeVar("T")


async def collect(
    events: AsyncIterator[Event], *, on_event: Callable[[Event], object] | None = None
) -> Response:
    """Fold a stream of events into a ``Response``.

    ``on_event`` sees every event as it arrives (to show text as it
    streams, say) before it is folded in; what it returns is ignored.
    """
    answer = ResponseBuilder()
    async for ev in events:
        if on_event is not None:
            on_event(ev)
        answer.feed(ev)
    return answer.build()


class EventStream:
    """One run's events; consume it once, preferably as a context manager.

    ``async with stream as events`` closes the run on leaving the block.
    ``async for ev in stream`` also works, but then closing on an early
    ``break`` is up to the garbage collector.
    """

    __slots__ = ("_events", "_start")

    def __init__(self, start: Callable[[], AsyncIterator[Event]]) -> None:
        self._start: Callable[[], AsyncIterator[Event]] | None = start
        self._events: AsyncIterator[Event] | None = None

    def _open(self) -> AsyncIterator[Event]:
        if self._start is None:
            raise PipelineMisuse("this stream was already consumed; call stream() again")
        start, self._start = self._start, None
        self._events = start()
        return self._events

    async def __aenter__(self) -> AsyncIterator[Event]:
        return self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._open()

    async def aclose(self) -> None:
        """Close every stage of the run (idempotent)."""
        events, self._events = self._events, None
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code.

    Inside a running event loop ``asyncio.run`` is forbidden, so the
    coroutine then runs on a worker thread with its own loop (the calling
    loop is blocked meanwhile, as any blocking call would block it).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    # The caller's context (its current span, for one) goes along to the thread.
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llmpipe-sync") as pool:
        return pool.submit(context.run, lambda: asyncio.run(make())).result()
