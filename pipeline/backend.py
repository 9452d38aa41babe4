"""The backend protocol: the one seam under the dispatch stage.

A backend is what actually talks to a provider (litellm, a direct HTTP
client) or stands in for one (a replayed dump, a test double). It gets one
normalized ``Request`` and yields provider-neutral ``Chunk``s::

    class Backend(Protocol):
        name: str
        def send(self, request, ctx, *, stream=True) -> AsyncIterator[Chunk]: ...
        async def aclose(self) -> None: ...

Everything that is the same for every backend is the dispatch stage's
(``stages.dispatch``), written once: the first-chunk and idle timeouts
around each pull, recording the attempt's chunks for dumps, telling the
instrument of the first chunk, and closing the backend's stream on every
exit path. So a backend only translates:

- ``send`` is an async generator (dispatch ``aclose()``s it when the
  consumer stops early, is cancelled, or fails; its ``finally`` releases the
  HTTP response). It sends nothing before its first ``__anext__``;
- it raises only ``pipeline.errors`` for what went wrong with the call:
  foreign exceptions are translated here, at the boundary, and nowhere else
  (anything else passes dispatch untouched, as a bug: never retried);
- it never retries on its own (the retry segment is the only retry layer),
  and never waits on a timer of its own for the answer (dispatch bounds each
  pull);
- ``stream=False`` asks for one non-streamed call, yielded as the chunks a
  stream of the same answer would have produced (``stages.dispatch.simulated``
  asks for it where a provider's streaming is broken); a backend without
  such a call may stream anyway;
- ``aclose()`` releases what the backend keeps for the running event loop
  (pooled connections); the backend stays usable and opens new ones on its
  next call. ``Pipeline.aclose()`` calls it.

A backend that needs a moment before it can send at all (the litellm
backend imports litellm, seconds the first time) may also have ``async def
prepare(self, request, ctx) -> None`` (``Preparing``): dispatch awaits it
before each request, outside the timeouts, so that moment is never taken for
a stall. It gets the request, so a backend that routes requests (``"auto"``)
prepares only the backend that will send this one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pipeline.events import Chunk
from pipeline.request import Request

if TYPE_CHECKING:
    from pipeline.context import Context

__all__ = ["Backend", "Preparing"]


@runtime_checkable
class Backend(Protocol):
    """Sends one normalized request; yields provider-neutral chunks (see the module)."""

    @property
    def name(self) -> str:
        """What it talks to: ``"litellm"``, ``"replay"``, ``"scripted"``, ..."""
        ...

    def send(self, request: Request, ctx: Context, *, stream: bool = True) -> AsyncIterator[Chunk]:
        """The chunks of the answer to ``request``; only ``pipeline.errors`` raised."""
        ...

    async def aclose(self) -> None:
        """Release what it keeps for the running event loop; it stays usable."""
        ...


@runtime_checkable
class Preparing(Protocol):
    """A backend's optional ``prepare``: made ready to send, before the timeouts start."""

    async def prepare(self, request: Request, ctx: Context) -> None: ...
