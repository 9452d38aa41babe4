"""``LiteLLMBackend``: the backend that sends through ``litellm.acompletion``.

- litellm is imported on first use, off the event loop (``loader``), in
  ``prepare``, which dispatch awaits before it starts timing the answer;
- the request goes as ``routing.build_kwargs`` says: streamed with usage
  requested, litellm's own retries off, the profile's parameters applied;
  ``stream=False`` makes one non-streamed call, played back as the chunks a
  stream of the same answer would have produced (``chunks.response_chunks``);
- a 200 answer that is a document (HTML, JSON), not a stream, raises
  ``MalformedResponse`` naming its content type and first bytes (``http``),
  and so does a stream that held no events and was not an event stream;
- usage litellm made up (the provider reported none) is marked
  ``usage_estimated``;
- litellm's exceptions become ``pipeline.errors`` here, and only here
  (``errors.translate``), chained only as redacted stand-ins;
- the HTTP response is closed (``aclose``) on every exit path;
- ``aclose()`` closes the HTTP clients litellm pooled for the running event
  loop, and only those (``clients``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar, cast

from pipeline.context import Context
from pipeline.errors import ClientClosed, PipelineError
from pipeline.events import Chunk, Request
from stages.dispatch.litellm.chunks import provider_reported_usage, response_chunks, to_chunk
from stages.dispatch.litellm.clients import close_loop_clients
from stages.dispatch.litellm.errors import translate
from stages.dispatch.litellm.http import not_a_stream, stream_type, unreadable_empty
from stages.dispatch.litellm.loader import import_litellm
from stages.dispatch.litellm.routing import build_kwargs

__all__ = ["LiteLLMBackend"]

T = TypeVar("T")


class LiteLLMBackend:
    """Sends through litellm; the universal backend (see the module)."""

    __slots__ = ()

    name = "litellm"

    def __repr__(self) -> str:
        return "LiteLLMBackend()"

    async def prepare(self, request: Request, ctx: Context) -> None:
        """Import litellm (seconds, the first time in a process)."""
        await import_litellm()

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        litellm = await import_litellm()
        kwargs = build_kwargs(request, ctx.profile)
        if not stream:
            kwargs = {k: v for k, v in kwargs.items() if k not in ("stream", "stream_options")}
            whole = await _call(litellm.acompletion(**kwargs), request, reading=True)
            for chunk in response_chunks(whole):
                yield chunk
            return
        response = await _call(litellm.acompletion(**kwargs), request, reading=False)
        try:
            ctype = stream_type(response)
            refused = await not_a_stream(response, ctype, ctx.policy.first_chunk_timeout_s)
            if refused is not None:
                raise refused
            raws = response.__aiter__()
            content = False
            while True:
                raw = await _call(raws.__anext__(), request, reading=True)
                if raw is _END:
                    break
                chunk = to_chunk(raw)
                if chunk.usage is not None and not provider_reported_usage(response):
                    chunk = Chunk(usage=chunk.usage, usage_estimated=True, model=chunk.model)
                content = content or bool(chunk.text or chunk.reasoning or chunk.tool_fragments)
                yield chunk
            unreadable = None if content else unreadable_empty(ctype)
            if unreadable is not None:
                raise unreadable
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        """Close the clients litellm pooled for the running event loop (others stay open)."""
        await close_loop_clients()


_END: Any = object()  # the end of a stream, as ``_call`` reports it


async def _call(awaitable: Awaitable[T], req: Request, *, reading: bool) -> T:
    """``awaitable``'s result, its failure as a ``pipeline.errors`` exception.

    The translated error is raised outside the ``except`` block, so the foreign
    exception is not chained as ``__context__`` (only its redacted stand-in, as
    ``__cause__``); the end of a stream comes back as ``_END``.
    """
    try:
        return await awaitable
    except StopAsyncIteration:
        return cast(T, _END)
    except Exception as exc:
        error: PipelineError | ClientClosed = translate(exc, req, reading=reading)
    raise error
