"""Test doubles shipped with the library: a scripted dispatch and a fake provider.

``scripted`` replaces the ``dispatch`` stage with a list of chunk scripts,
one per attempt, so the rest of the pipeline runs unchanged and offline::

    p = Pipeline.default().replace("dispatch", testing.scripted([["Hel", "lo"]]))

``FakeProvider`` is a real HTTP server on loopback speaking the OpenAI and
Anthropic streaming formats, for end-to-end tests through real LiteLLM.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal

from pipeline.context import Context
from pipeline.errors import PipelineMisuse
from pipeline.events import Chunk, Event, Request, ToolFragment
from pipeline.runner import closing
from pipeline.testing.fakeprovider import (
    ConnectionRecord,
    Done,
    Drop,
    FakeProvider,
    Finish,
    Raw,
    Reasoning,
    RecordedRequest,
    Reply,
    Stall,
    Text,
    ToolDelta,
    Usage,
    Wire,
)

__all__ = [
    "ConnectionRecord",
    "Done",
    "Drop",
    "FakeClock",
    "FakeProvider",
    "Finish",
    "Raw",
    "Reasoning",
    "RecordedRequest",
    "Reply",
    "ScriptedDispatch",
    "Stall",
    "Text",
    "ToolDelta",
    "Usage",
    "Wire",
    "scripted",
    "text_chunks",
    "tool_chunks",
]

#: one attempt's script: chunks (a ``str`` is a text chunk), and exceptions to raise
Script = Sequence[Chunk | str | BaseException]
Outcome = Literal["finished", "closed", "raised"]


class ScriptedDispatch:
    """A ``dispatch`` stand-in that plays one script per ``Request`` it receives.

    It records every request (``calls``) and how each run ended
    (``outcomes``: finished, closed early by downstream, or raised), so tests
    can assert that cancellation closed it.
    """

    def __init__(self, scripts: Iterable[Script], *, name: str = "dispatch") -> None:
        self.name = name
        self.scripts = [list(s) for s in scripts]
        self.calls: list[Request] = []
        self.outcomes: list[Outcome] = []

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream, ctx)

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                attempt = len(self.calls)
                self.calls.append(ev)
                if attempt >= len(self.scripts):
                    raise PipelineMisuse(
                        f"scripted dispatch has {len(self.scripts)} scripts;"
                        f" attempt {attempt + 1} has none"
                    )
                outcome: Outcome = "closed"
                recording = ctx.attempt.recording if ctx.attempt is not None else None
                first = True
                try:
                    for item in self.scripts[attempt]:
                        if isinstance(item, BaseException):
                            outcome = "raised"
                            raise item
                        chunk = Chunk(text=item) if isinstance(item, str) else item
                        if first:  # as dispatch does
                            first = False
                            ctx.instrument.first_chunk(ctx)
                        if recording is not None:  # for failed-request dumps, as dispatch does
                            recording.append(chunk)
                        yield chunk
                    outcome = "finished"
                finally:
                    self.outcomes.append(outcome)


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


def scripted(scripts: Iterable[Script], *, name: str = "dispatch") -> ScriptedDispatch:
    """A scripted dispatch: ``scripted([[chunk, ...], [chunk, ..., exc]])``."""
    return ScriptedDispatch(scripts, name=name)


def text_chunks(
    *parts: str,
    finish: str | None = "stop",
    usage: tuple[int, int] | None = (10, 5),
    model: str = "",
) -> list[Chunk]:
    """Text chunks, a finish chunk, and a trailing usage-only chunk."""
    chunks = [Chunk(text=p, model=model) for p in parts]
    if finish is not None:
        chunks.append(Chunk(finish_reason=finish, model=model))
    if usage is not None:
        chunks.append(Chunk(usage=_usage(*usage), model=model))
    return chunks


def tool_chunks(
    *calls: tuple[str, str, str],
    finish: str = "tool_calls",
    usage: tuple[int, int] | None = (10, 5),
) -> list[Chunk]:
    """One chunk per ``(id, name, raw_arguments)`` call, at indices 0, 1, ..."""
    chunks = [
        Chunk(tool_fragments=(ToolFragment(index=i, id=cid, name=name, arguments=args),))
        for i, (cid, name, args) in enumerate(calls)
    ]
    chunks.append(Chunk(finish_reason=finish))
    if usage is not None:
        chunks.append(Chunk(usage=_usage(*usage)))
    return chunks


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
