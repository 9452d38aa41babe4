"""empty_check: an answer with nothing in it is an error, not a result.

consumes: nothing
emits: nothing of its own; raises ``EmptyResponse`` at ``Finish`` when no
    ``TextDelta`` and no ``ToolCall`` came before it, unless the stop reason is
    ``length`` (the model spent its whole token budget before answering:
    asking again with the same budget cannot help, so that ``Finish`` is
    passed on, with a warning)
passes through: every event
buffers: nothing
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pipeline.context import Context
from pipeline.errors import EmptyResponse
from pipeline.events import Event, Finish, TextDelta, ToolCall
from pipeline.runner import closing
from pipeline.secrets import guard_logger
from pipeline.stage import Stage, stage

__all__ = ["empty_check"]

log = guard_logger("llmpipe.empty_check")


def empty_check() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        content = False
        async with closing(upstream) as events:
            async for ev in events:
                kind = type(ev)
                if kind is TextDelta or kind is ToolCall:
                    content = True
                elif kind is Finish and not content:
                    assert isinstance(ev, Finish)
                    if ev.stop_reason != "length":
                        raise EmptyResponse(
                            f"{ev.model or ctx.request.model} returned no text and no tool call"
                            f" (finish reason {ev.stop_reason!r})"
                        )
                    log.warning(
                        "%s spent its whole token budget (max_tokens=%s) before producing any"
                        " output; not retrying: raise max_tokens or use another model",
                        ev.model or ctx.request.model,
                        ctx.request.max_tokens,
                    )
                yield ev

    return stage("empty_check", run, contained=True)
