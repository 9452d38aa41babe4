"""Where the calls of a batch run: the ``Engine`` seam, the local engine, one call's ``Outcome``.

``call_one`` is what every engine runs per item (the Ray workers too), so a
line means the same whichever engine wrote it; ``LocalEngine`` runs the
calls in this event loop, ``concurrency`` at a time (aiostream's ``map``
with a task limit), through one shared pipeline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiostream import Stream, stream

from pipeline.cli.batch.input import Item
from pipeline.cli.exits import failure_kind
from pipeline.errors import RetriesExhausted
from pipeline.events import Finish, Retrying, ToolCall
from pipeline.pipeline import Pipeline
from pipeline.response import ResponseBuilder

__all__ = ["Engine", "EngineError", "LocalEngine", "Outcome", "call_one"]


@dataclass(slots=True)
class Outcome:
    """One finished request, as it will be written."""

    item: Item
    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish: Finish | None = None
    retries: int = 0
    error: Exception | None = None
    elapsed_s: float = 0.0

    @property
    def attempts(self) -> int:
        if isinstance(self.error, RetriesExhausted):
            return self.error.attempts
        return self.retries + 1

    def record(self) -> dict[str, Any]:
        """The output line: the same keys for every line, success or failure."""
        f = self.finish
        error = None
        if self.error is not None:
            error = {
                "kind": failure_kind(self.error),
                "type": type(self.error).__name__,
                "message": str(self.error),
            }
        return {
            "id": self.item.id,
            "text": self.text,
            "reasoning": self.reasoning,
            "tool_calls": [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in self.tool_calls
            ],
            "stop_reason": f.stop_reason if f else None,
            "usage": {
                "input_tokens": f.input_tokens if f else 0,
                "output_tokens": f.output_tokens if f else 0,
                "cached_tokens": f.cached_tokens if f else 0,
                "source": f.usage_source if f else "none",
                "cost_usd": f.cost_usd if f else None,
            },
            "model": (f.model if f else "") or self.item.request.model,
            "attempts": self.attempts,
            "error": error,
            "line": self.item.line,
            "elapsed_s": round(self.elapsed_s, 3),
        }


class Engine(Protocol):
    """Where the calls of a batch run; the default runs them in this event loop.

    ``outcomes`` runs every item and yields each ``Outcome`` as it finishes
    (in any order), calling ``on_retry`` once per retry. Leaving the context
    stops the calls still running. An item the engine could not run is not
    yielded (so it is not written, and the next run does it); it then
    raises ``EngineError`` after the others.
    """

    def describe(self) -> str: ...

    def outcomes(
        self, items: list[Item], *, on_retry: Callable[[], None]
    ) -> AbstractAsyncContextManager[AsyncIterator[Outcome]]: ...


class EngineError(Exception):
    """The engine lost calls (its workers died): they were not written."""


async def call_one(
    pipe: Pipeline,
    item: Item,
    *,
    clock: Callable[[], float] = time.monotonic,
    on_retry: Callable[[], None] | None = None,
) -> Outcome:
    """One request to the end; failures become the outcome, never an exception.

    What every engine runs per item (the Ray workers too), so a line means the
    same whichever engine wrote it.
    """
    out = Outcome(item)
    answer = ResponseBuilder()
    started = clock()
    try:
        async with pipe.stream(item.request) as events:
            async for ev in events:
                answer.feed(ev)
                if on_retry is not None and type(ev) is Retrying:
                    on_retry()
    except Exception as exc:  # one line's failure is that line's result
        out.error = exc
    out.text, out.reasoning, out.tool_calls = answer.text, answer.reasoning, answer.tool_calls
    out.finish, out.retries = answer.finish, answer.retries
    if out.error is None and out.finish is None:
        out.error = _NoFinish("the stream ended without a finish")
    out.elapsed_s = clock() - started
    return out


class _NoFinish(Exception):
    pass


def _until(items: list[Item], stop: Callable[[], bool] | None) -> Iterator[Item]:
    for item in items:
        if stop is not None and stop():
            return
        yield item


class LocalEngine:
    """The calls in this event loop, ``concurrency`` at a time, through one pipeline.

    ``stop`` is asked before each item is started: once it says so, no
    other item starts (the ones running finish); a usage limit reached.
    """

    def __init__(
        self,
        pipe: Pipeline,
        *,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        self.pipe = pipe
        self.concurrency = concurrency
        self.clock = clock
        self.stop = stop

    def describe(self) -> str:
        return "this process"

    def outcomes(
        self, items: list[Item], *, on_retry: Callable[[], None]
    ) -> AbstractAsyncContextManager[AsyncIterator[Outcome]]:
        async def call(item: Item) -> Outcome:
            return await call_one(self.pipe, item, clock=self.clock, on_retry=on_retry)

        outcomes: Stream[Outcome] = stream.map(
            stream.iterate(_until(items, self.stop)),
            call,  # type: ignore[arg-type]  # aiostream's protocol wants *args
            ordered=False,
            task_limit=self.concurrency,
        )
        return outcomes.stream()
