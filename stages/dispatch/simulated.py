"""Simulated streaming: a backend wrapper for providers whose streaming is broken.

Where the request's profile says ``streaming="simulated"`` (MiniMax: litellm's
stream parser fails on its chunks), the wrapped backend is asked for one
non-streamed call (``send(..., stream=False)``), which it yields as the
chunks a stream of the same answer would have produced; the stages after
dispatch cannot tell the difference. Every other request streams as usual.

It wraps any backend, and is chosen when a pipeline is composed
(``pipeline.composition``: ``dispatch(simulated(LiteLLMBackend()))``), in
the manner of the Vercel AI SDK's ``simulateStreamingMiddleware``, so the
dispatch stage itself has no such ``if``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from pipeline.backend import Backend, Preparing
from pipeline.context import Context
from pipeline.events import Chunk, Request

__all__ = ["Simulated", "profile_says_simulated", "simulated"]


def profile_says_simulated(ctx: Context) -> bool:
    """Whether the request's provider profile has streaming turned off."""
    return ctx.profile.streaming == "simulated"


class Simulated:
    """``inner``, asked for non-streamed calls where ``when(ctx)`` holds."""

    __slots__ = ("_prepare", "inner", "when")

    def __init__(
        self, inner: Backend, *, when: Callable[[Context], bool] = profile_says_simulated
    ) -> None:
        self.inner = inner
        self.when = when
        # looked up once: an isinstance against a runtime Protocol costs microseconds a call
        self._prepare = inner.prepare if isinstance(inner, Preparing) else None

    @property
    def name(self) -> str:
        return self.inner.name

    def __repr__(self) -> str:
        return f"simulated({self.inner!r})"

    def send(self, request: Request, ctx: Context, *, stream: bool = True) -> AsyncIterator[Chunk]:
        return self.inner.send(request, ctx, stream=stream and not self.when(ctx))

    async def prepare(self, request: Request, ctx: Context) -> None:
        if self._prepare is not None:
            await self._prepare(request, ctx)

    async def aclose(self) -> None:
        await self.inner.aclose()


def simulated(
    inner: Backend, *, when: Callable[[Context], bool] = profile_says_simulated
) -> Simulated:
    """``inner`` with simulated streaming where ``when`` says (default: the profile)."""
    return Simulated(inner, when=when)
