"""``FunctionBackend``: a backend whose answers come from a function of yours.

In the manner of pydantic-ai's ``FunctionModel``: when a script of chunks
per attempt is not enough (the answer depends on the messages, a tool
result, the attempt number), write the model as a function::

    def model(request: Request, ctx: Context) -> str:
        if ctx.attempt is not None and ctx.attempt.number == 1:
            raise RateLimited("slow down", status_code=429)
        return "You said: " + request.messages[-1]["content"]

    p = Pipeline.default(backend=testing.FunctionBackend(model))

The function gets the request as dispatch sends it (normalized) and the
context (``ctx.attempt.number`` inside the retry segment). It returns the
answer: a ``str`` (one text chunk and a ``stop`` finish), a ``Chunk``, or an
iterable or async iterable of chunks and strings (strings are text chunks);
it may be ``async``, or an async generator (streamed as it yields). It
raises to fail the call: ``pipeline.errors`` exceptions behave as a
provider's would.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Union

from pipeline.context import Context
from pipeline.events import Chunk, Request

__all__ = ["Answer", "AnswerFunction", "FunctionBackend"]

#: what the function may return
Answer = Union[str, Chunk, Iterable[Chunk | str], AsyncIterable[Chunk | str]]  # noqa: UP007
#: the function: request and context in, an answer (or an awaitable of one) out
AnswerFunction = Callable[[Request, Context], Answer | Awaitable[Answer]]


class FunctionBackend:
    """A backend that answers each request with ``fn(request, ctx)``; ``calls`` records them."""

    name = "function"

    def __init__(self, fn: AnswerFunction) -> None:
        self.fn = fn
        self.calls: list[Request] = []

    def __repr__(self) -> str:
        return f"FunctionBackend({getattr(self.fn, '__name__', self.fn)!r})"

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        self.calls.append(request)
        answer = self.fn(request, ctx)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, str):
            yield Chunk(text=answer)
            yield Chunk(finish_reason="stop")
        elif isinstance(answer, Chunk):
            yield answer
        elif isinstance(answer, AsyncIterable):
            items = aiter(answer)
            try:
                async for item in items:
                    yield _chunk(item)
            finally:  # an async generator of the function's, closed with the send
                close = getattr(items, "aclose", None)
                if close is not None:
                    await close()
        else:
            for item in answer:
                yield _chunk(item)

    async def aclose(self) -> None:
        return None


def _chunk(item: object) -> Chunk:
    if isinstance(item, Chunk):
        return item
    if isinstance(item, str):
        return Chunk(text=item)
    raise TypeError(f"a FunctionBackend answer yields Chunks or strings, not {type(item).__name__}")
