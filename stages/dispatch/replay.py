"""Replay: a backend that plays back the chunks of a failed-request dump.

``replay_dispatch(chunks)`` is the dispatch stage over it: every request gets
the recorded chunks, and the provider is never called. Put in place of
``dispatch``, the rest of the pipeline (reassemble, usage, empty_check,
retry) runs unchanged on what production received, so a failure seen in
production can be reproduced and debugged offline (``llmpipe replay
DUMP.json``; the dumps are ``stages.dumps.DumpFile``s).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from pipeline.context import Context
from pipeline.events import Chunk, Request
from stages.dispatch import Dispatch

__all__ = ["ReplayBackend", "replay_dispatch"]


class ReplayBackend:
    """A backend that answers every request with the same recorded chunks."""

    name = "replay"

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = tuple(chunks)

    def __repr__(self) -> str:
        return f"ReplayBackend({len(self.chunks)} chunks)"

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        return None


def replay_dispatch(chunks: Sequence[Chunk], *, name: str = "dispatch") -> Dispatch[ReplayBackend]:
    """A dispatch stage that plays ``chunks`` back for every ``Request``."""
    return Dispatch(ReplayBackend(chunks), name=name)
