"""reassemble: provider chunks in, answer events out.

consumes: ``Chunk``
emits: ``TextDelta`` and ``ReasoningDelta`` at once, as chunks arrive; after
    the stream: ``TextEnd`` (when there was text), every ``ToolCall``, and one
    ``Finish`` (even when the provider sent two finish reasons, or none)
passes through: chunks that carry usage (for ``usage``), every other event
buffers: tool-call fragments (a call is complete only at the end)

``Finish.model`` is the first model a chunk names (a trailing usage chunk
may name another: litellm's says the requested name), else the request's.

When a tool call's arguments cannot be parsed even after repair, it raises
``MalformedToolCall`` before emitting any ``ToolCall``: a consumer never acts
on half of a parallel batch.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pipeline.context import Context
from pipeline.events import Chunk, Event, Finish, ReasoningDelta, TextDelta, TextEnd
from pipeline.pieces import Pieces
from pipeline.runner import closing
from pipeline.secrets import guard_logger
from pipeline.stage import Stage, stage
from stages.toolcalls import ToolCallAssembler

__all__ = ["reassemble"]

log = guard_logger("llmpipe.reassemble")


def reassemble() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        text = Pieces()  # the characters, not an object per delta
        calls = ToolCallAssembler()
        finish_reason: str | None = None
        model = ""
        async with closing(upstream) as events:
            async for ev in events:
                if type(ev) is not Chunk:
                    yield ev
                    continue
                if ev.text:
                    text.append(ev.text)
                    yield TextDelta(text=ev.text)
                if ev.reasoning:
                    yield ReasoningDelta(text=ev.reasoning)
                for frag in ev.tool_fragments:
                    calls.add(frag)
                if ev.finish_reason and finish_reason is None:
                    finish_reason = ev.finish_reason
                if ev.model and not model:  # the first model named is the one that answered
                    model = ev.model
                if ev.usage is not None:
                    yield ev
        tool_calls = calls.finish()
        if text:
            yield TextEnd(text=str(text))
        for call in tool_calls:
            if call.repaired:
                log.warning("repaired truncated arguments of tool call %r (%s)", call.name, call.id)
            yield call
        if finish_reason is None:
            finish_reason = "tool_calls" if tool_calls else "stop"
            log.debug("stream ended without a finish reason; assuming %r", finish_reason)
        yield Finish(stop_reason=finish_reason, model=model or ctx.request.model)

    return stage("reassemble", run, contained=True)
