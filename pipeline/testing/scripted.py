"""``ScriptedBackend``: a backend that plays one script of chunks per request.

``scripted([script, script, ...])`` is the dispatch stage over it (named
``dispatch``), so ``Pipeline.default().replace("dispatch", scripted(...))``
runs the rest of the pipeline, and the real dispatch stage (timeouts,
recording, closing), offline. A script is what one attempt receives: chunks
(a ``str`` is a text chunk) and exceptions, raised where they stand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Literal

from pipeline.context import Context
from pipeline.errors import PipelineMisuse
from pipeline.events import Chunk, Request
from stages.dispatch import Dispatch

__all__ = ["Outcome", "Script", "ScriptedBackend", "ScriptedDispatch", "scripted"]

#: one attempt's script: chunks (a ``str`` is a text chunk), and exceptions to raise
Script = Sequence[Chunk | str | BaseException]
#: how one send ended: played to the end, closed early by dispatch, or raised
Outcome = Literal["finished", "closed", "raised"]


class ScriptedBackend:
    """Plays ``scripts[n]`` for the n-th request it is sent; records what it saw.

    ``calls`` are the requests, in order; ``outcomes`` how each send ended
    (finished, closed early by downstream, or raised), so tests can assert
    that cancellation closed it.
    """

    name = "scripted"

    def __init__(self, scripts: Iterable[Script]) -> None:
        self.scripts = [list(s) for s in scripts]
        self.calls: list[Request] = []
        self.outcomes: list[Outcome] = []

    def __repr__(self) -> str:
        return f"ScriptedBackend({len(self.scripts)} scripts, {len(self.calls)} sent)"

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        attempt = len(self.calls)
        self.calls.append(request)
        if attempt >= len(self.scripts):
            raise PipelineMisuse(
                f"scripted dispatch has {len(self.scripts)} scripts; attempt {attempt + 1} has none"
            )
        outcome: Outcome = "closed"
        try:
            for item in self.scripts[attempt]:
                if isinstance(item, BaseException):
                    outcome = "raised"
                    raise item
                yield Chunk(text=item) if isinstance(item, str) else item
            outcome = "finished"
        finally:
            self.outcomes.append(outcome)

    async def aclose(self) -> None:
        return None


class ScriptedDispatch(Dispatch[ScriptedBackend]):
    """The dispatch stage over a ``ScriptedBackend``, with its records at hand."""

    __slots__ = ()

    def __init__(self, scripts: Iterable[Script], *, name: str = "dispatch") -> None:
        super().__init__(ScriptedBackend(scripts), name=name)

    @property
    def scripts(self) -> list[list[Chunk | str | BaseException]]:
        return self.backend.scripts

    @property
    def calls(self) -> list[Request]:
        """The requests dispatch sent, in order (as the stages before it shaped them)."""
        return self.backend.calls

    @property
    def outcomes(self) -> list[Outcome]:
        return self.backend.outcomes


def scripted(scripts: Iterable[Script], *, name: str = "dispatch") -> ScriptedDispatch:
    """A scripted dispatch: ``scripted([[chunk, ...], [chunk, ..., exc]])``."""
    return ScriptedDispatch(scripts, name=name)
