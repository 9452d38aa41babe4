"""``backend="auto"``: the direct backend where the endpoint speaks OpenAI chat-completions.

Each request goes by its provider profile (``ctx.profile``): where the
profile says the endpoint speaks OpenAI chat-completions
(``Profile.chat_completions``: an explicit ``api_base`` with a bare model,
``openai/``, OpenRouter, DeepSeek, Groq), to the direct backend; everywhere
else (Anthropic, Bedrock, Vertex, Gemini, Azure, MiniMax, ...), to litellm.
So one pipeline serves every model, and a program that only ever calls
OpenAI-compatible endpoints never imports litellm: its ``prepare`` (the
import) runs only for a request that goes to litellm.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from pipeline.backend import Backend, Preparing
from pipeline.context import Context
from pipeline.events import Chunk, Request

__all__ = ["AutoBackend", "speaks_chat_completions"]


def speaks_chat_completions(ctx: Context) -> bool:
    """Whether the request's provider profile says its endpoint speaks chat-completions."""
    return ctx.profile.chat_completions is not None


class AutoBackend:
    """``direct`` for the requests whose endpoint speaks chat-completions, else ``universal``."""

    __slots__ = ("direct", "universal")

    name = "auto"

    def __init__(self, direct: Backend, universal: Backend) -> None:
        self.direct = direct
        self.universal = universal

    def __repr__(self) -> str:
        return f"AutoBackend({self.direct!r}, {self.universal!r})"

    def pick(self, ctx: Context) -> Backend:
        """The backend that sends the request of ``ctx``."""
        return self.direct if speaks_chat_completions(ctx) else self.universal

    def send(self, request: Request, ctx: Context, *, stream: bool = True) -> AsyncIterator[Chunk]:
        return self.pick(ctx).send(request, ctx, stream=stream)

    async def prepare(self, request: Request, ctx: Context) -> None:
        backend = self.pick(ctx)
        if isinstance(backend, Preparing):
            await backend.prepare(request, ctx)

    async def aclose(self) -> None:
        """Release what both hold for the running loop (the second even if the first fails)."""
        try:
            await self.direct.aclose()
        finally:
            await self.universal.aclose()
