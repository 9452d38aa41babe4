"""dispatch (litellm): send the request, turn each provider chunk into a ``Chunk``.

consumes: ``Request``
emits: ``Chunk`` per provider chunk (provider-neutral)
passes through: every other event
buffers: nothing

- ``litellm.acompletion(stream=True, stream_options={"include_usage": True},
  max_retries=0)``: litellm's own retries are off, retrying is the pipeline's
  job, once; the profile's ``drop_params`` / ``extra_params`` apply;
- where the profile says streaming is broken (``streaming="simulated"``),
  one non-streamed call, played back as the chunks of a stream;
- litellm is imported on first use, on a worker thread (the import takes
  seconds) and with the offline cost map, so nothing waits on the network;
- the HTTP response is closed (``aclose``) on every exit path: end, error,
  ``break`` downstream, cancellation;
- the policy's first-chunk and idle timeouts bound each pull from the
  provider (a stall raises ``ProviderTimeout``, which is transient); they
  measure the wait for bytes, not time the event loop was blocked
  (``pipeline.timeouts``);
- a 200 answer that is a document (HTML, JSON), not a stream, raises
  ``MalformedResponse`` naming its content type and first bytes
  (``stages.litellm_http``);
- when the retry segment asks (``ctx.recording``), every chunk is recorded
  for failed-request dumps;
- litellm's exceptions become ``pipeline.errors`` here, and only here
  (``stages.litellm_errors``), chained only as redacted stand-ins.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable
from types import ModuleType
from typing import Any, TypeVar, cast

from pipeline.errors import PipelineError, ProviderTimeout
from pipeline.events import Chunk, Event, Request
from pipeline.profiles import DEFAULT, Profile
from pipeline.secrets import guard_loggers
from pipeline.stage import Context, Stage, closing, stage
from pipeline.timeouts import Stalled, within
from stages.litellm_chunks import provider_reported_usage, response_chunks, to_chunk
from stages.litellm_errors import translate
from stages.litellm_http import not_a_stream, stream_type, unreadable_empty

__all__ = ["build_kwargs", "close_clients", "import_litellm", "litellm_dispatch"]

T = TypeVar("T")

#: the loggers of litellm and the clients under it: redacted like our own
LIBRARY_LOGGERS = (
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "openai",
    "openai._base_client",
    "httpx",
    "httpcore",
    "aiohttp.client",
)


def litellm_dispatch() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                litellm = await import_litellm()
                ctx.shared.on_loop_end("litellm.clients", close_clients)
                kwargs = build_kwargs(ev, ctx.profile)
                if ctx.profile.streaming == "simulated":
                    for chunk in await _whole(litellm, kwargs, ev, ctx):
                        yield chunk
                    continue
                first = ctx.policy.first_chunk_timeout_s
                response = await _call(
                    litellm.acompletion(**kwargs), first, "first", ev, reading=False
                )
                try:
                    async for chunk in _chunks(response, ev, ctx):
                        yield chunk
                finally:
                    await response.aclose()

    return stage("dispatch", run)


async def _chunks(response: Any, req: Request, ctx: Context) -> AsyncIterator[Chunk]:
    """Pull provider chunks; errors are translated around the pull, never the yield."""
    policy = ctx.policy
    ctype = stream_type(response)
    refused = await not_a_stream(response, ctype, policy.first_chunk_timeout_s)
    if refused is not None:
        raise refused
    stream = response.__aiter__()
    timeout, which = policy.first_chunk_timeout_s, "first"
    recording = ctx.recording
    content = False
    while True:
        raw = await _call(stream.__anext__(), timeout, which, req, reading=True)
        if raw is _END:
            break
        timeout, which = policy.idle_timeout_s, "next"
        chunk = to_chunk(raw)
        if chunk.usage is not None and not provider_reported_usage(response):
            chunk = Chunk(usage=chunk.usage, usage_estimated=True, model=chunk.model)
        if recording is not None:
            recording.append(chunk)
        content = content or bool(chunk.text or chunk.reasoning or chunk.tool_fragments)
        yield chunk
    unreadable = None if content else unreadable_empty(ctype)
    if unreadable is not None:
        raise unreadable


async def _whole(
    litellm: ModuleType, kwargs: dict[str, Any], req: Request, ctx: Context
) -> list[Chunk]:
    """A non-streamed call, played back as the chunks of a stream."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("stream", "stream_options")}
    call = litellm.acompletion(**kwargs)
    response = await _call(call, ctx.policy.first_chunk_timeout_s, "first", req, reading=True)
    chunks = response_chunks(response)
    if ctx.recording is not None:
        ctx.recording.extend(chunks)
    return chunks


_END: Any = object()  # the end of a stream, as ``_call`` reports it


async def _call(
    awaitable: Awaitable[T], seconds: float | None, which: str, req: Request, *, reading: bool
) -> T:
    """``awaitable`` within the timeout, its failure as a ``pipeline.errors`` exception.

    The translated error is raised outside the ``except`` block, so the foreign
    exception is not chained as ``__context__`` (only its redacted stand-in, as
    ``__cause__``); the end of a stream comes back as ``_END``.
    """
    try:
        return await within(awaitable, seconds)
    except StopAsyncIteration:
        return cast(T, _END)
    except Stalled:
        error: PipelineError = ProviderTimeout(
            f"no {which} chunk from the provider within {seconds}s (the stream stalled)"
        )
    except Exception as exc:
        error = translate(exc, req, reading=reading)
    raise error


def build_kwargs(req: Request, profile: Profile = DEFAULT) -> dict[str, Any]:
    """The keyword arguments of ``litellm.acompletion`` for a normalized request."""
    kwargs: dict[str, Any] = {
        **profile.extra_params,
        **req.extra,
        "model": req.model,
        "messages": req.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_retries": 0,
    }
    if req.max_tokens is not None:
        kwargs["max_tokens"] = req.max_tokens
    if req.tools:
        kwargs["tools"] = [t.to_openai() for t in req.tools]
    if req.response_format is not None:
        kwargs["response_format"] = req.response_format
    if req.api_key:
        kwargs["api_key"] = req.api_key
    if req.api_base:
        kwargs["api_base"] = req.api_base
    for name in profile.drop_params:
        kwargs.pop(name, None)
    return kwargs


async def import_litellm() -> ModuleType:
    """litellm, imported on first use off the event loop, offline-safe."""
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "acompletion"):
        return module
    # Without these, importing litellm fetches a cost map (and, on first
    # Anthropic OAuth use, a beta-headers table) over the network, which
    # offline stalls for seconds. A value the user set wins.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    module = await asyncio.to_thread(importlib.import_module, "litellm")
    # litellm prints "Give Feedback / Get Help" banners on errors otherwise.
    setattr(module, "suppress_debug_info", True)  # noqa: B010
    guard_loggers(LIBRARY_LOGGERS)
    return module


async def close_clients() -> None:
    """Close the HTTP clients litellm keeps for the running event loop.

    litellm pools connections per event loop; call this before a loop you
    made ends (``asyncio.run`` in a CLI, a test's loop) so no connection is
    left to the garbage collector. A no-op when litellm was never imported.
    """
    module = sys.modules.get("litellm")
    close = getattr(module, "close_litellm_async_clients", None)
    if close is not None:
        await close()
