"""The batch's circuit breaker: stop when the endpoint cannot be reached at all.

A batch against a dead port or a wrong host name would otherwise try every
line, each with its own retries and backoff: hundreds of lines, minutes of
waiting, and every line recorded as failed. Instead a stage placed right
after ``dispatch`` (inside the retry segment, so it sees every attempt)
counts connection failures (``ProviderUnreachable``: refused, host not
found) across all the lines in flight. ``STOP_AFTER`` of them in a row,
with no answer from any server in between, trip the breaker: the batch
stops, and the lines not finished are not written, so the re-run after the
fix does them. Any answer resets the count: a chunk, or an HTTP error
(the server is there, it just said no).

``STOP_AFTER`` is more than one line's attempts under the default policy
(4: one try and 3 transient retries), so a lone line with a bad per-line
``api_base`` fails on its own without stopping the batch, unless nothing
else gets through either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from pipeline.context import Context
from pipeline.errors import ProviderError, ProviderUnreachable
from pipeline.events import Chunk, Event
from pipeline.runner import closing
from pipeline.stage import Stage, stage

__all__ = ["STOP_AFTER", "Breaker"]

#: connection failures in a row, across lines, that stop a batch
STOP_AFTER = 5


class Breaker:
    """Counts connection failures in a row; ``on_trip`` runs once, at the ``limit``-th."""

    def __init__(self, on_trip: Callable[[ProviderUnreachable], None], limit: int = STOP_AFTER):
        self.limit = limit
        self.on_trip = on_trip
        self.in_a_row = 0
        self.tripped: ProviderUnreachable | None = None

    def failed(self, exc: ProviderUnreachable) -> None:
        self.in_a_row += 1
        if self.tripped is None and self.in_a_row >= self.limit:
            self.tripped = exc
            self.on_trip(exc)

    def answered(self) -> None:
        self.in_a_row = 0

    def stage(self) -> Stage:
        """The watching stage, for ``Pipeline.insert_after("dispatch", ...)``.

        consumes / emits / passes through: everything, unchanged
        buffers: nothing
        """

        async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
            heard = False
            async with closing(upstream) as events:
                while True:
                    try:
                        ev = await events.__anext__()
                    except StopAsyncIteration:
                        return
                    except ProviderUnreachable as exc:
                        self.failed(exc)
                        raise
                    except ProviderError as exc:
                        if exc.status_code is not None:
                            self.answered()
                        raise
                    if not heard and isinstance(ev, Chunk):
                        heard = True
                        self.answered()
                    yield ev

        return stage("connection_breaker", run)
