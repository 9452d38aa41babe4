"""A request's body leaves in the step that sends it, on Python 3.11 as on 3.12.

aiohttp writes a request's body (and, coalesced with it, the headers) in a
task of its own. From Python 3.12 that task starts eagerly: for a body that
fits the socket's buffer, the whole request is on the wire before ``post()``
first waits. On 3.11 the task is only scheduled, behind every callback already
ready. When many calls start at once (``asyncio.gather`` over 200 requests),
no request leaves until every one of them has run up to its send, so every
stream starts late by the setup of the whole batch: measured here, about
90 ms for 200 pipeline calls, which is 9 % of a one-second stream.

``request_class()`` is the session's ``request_class`` on Python 3.11 (none on
3.12 and later): its ``write_bytes`` runs the writer's first step at once,
as an eager task would. ``started`` is that step, for any coroutine: what the
coroutine does after its first wait (a body still draining, a
100-continue) is handed on to aiohttp's task unchanged, with that task's
cancellation and errors.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Coroutine, Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp
    from aiohttp.abc import AbstractStreamWriter
    from aiohttp.connector import Connection

__all__ = ["request_class", "started"]

#: ``_Rest`` has handed its coroutine's first wait on
_HANDED = object()


def started(coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    """Run ``coro`` now, up to its first wait; return what is left of it.

    The result is a coroutine for a task (or an ``await``): it ends at once
    when ``coro`` already finished, raises what ``coro`` raised, or else
    waits on what ``coro`` waits on, then resumes it."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return _finished()
    except Exception as exc:  # the task raises it, where aiohttp looks for it
        return _failed(exc)
    return _Rest(coro, pending)


async def _finished() -> None:
    return None


async def _failed(exc: Exception) -> None:
    raise exc


class _Rest(Coroutine[Any, Any, None]):
    """A started coroutine, from its first wait on: it first yields the wait the
    coroutine stopped at, then passes every send and throw to the coroutine.
    Not an iterator (``PyIter_Send`` would call ``__next__`` instead of ``send``)."""

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def send(self, value: Any) -> Any:
        pending = self._pending
        if pending is not _HANDED:
            self._pending = _HANDED
            return pending
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None, /) -> Any:
        self._pending = _HANDED  # a cancellation before the task ran lands in the coroutine
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)  # the old three-argument form

    def close(self) -> None:
        self._pending = _HANDED
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        value: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                pending = self.send(value) if thrown is None else self.throw(thrown)
            except StopIteration:
                return
            value, thrown = None, None
            try:
                value = yield pending
            except BaseException as exc:  # passed on to the coroutine, which decides
                thrown = exc


def request_class() -> type[aiohttp.ClientRequest] | None:
    """The ``request_class`` for a session: eager body writes before Python 3.12."""
    if sys.version_info >= (3, 12):
        return None
    return _eager_request()


@functools.cache
def _eager_request() -> type[aiohttp.ClientRequest]:
    import aiohttp

    class EagerBodyRequest(aiohttp.ClientRequest):
        """aiohttp's request, its body writer started in the sending step."""

        def write_bytes(
            self,
            writer: AbstractStreamWriter,
            conn: Connection,
            content_length: int | None = None,
        ) -> Coroutine[Any, Any, None]:
            return started(super().write_bytes(writer, conn, content_length))

    return EagerBodyRequest
