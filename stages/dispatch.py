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
  provider (a stall raises ``ProviderTimeout``, which is transient);
- when the retry segment asks (``ctx.recording``), every chunk is recorded
  for failed-request dumps;
- litellm's exceptions become ``pipeline.errors`` here, and only here
  (``stages.litellm_errors``).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import AsyncIterator, Awaitable
from types import ModuleType
from typing import Any, TypeVar

from pipeline.errors import ProviderTimeout
from pipeline.events import Chunk, Event, Request
from pipeline.profiles import DEFAULT, Profile
from pipeline.stage import Context, Stage, closing, stage
from stages.litellm_chunks import provider_reported_usage, response_chunks, to_chunk
from stages.litellm_clients import close_loop_clients
from stages.litellm_errors import translate

__all__ = ["build_kwargs", "close_clients", "import_litellm", "litellm_dispatch"]

T = TypeVar("T")


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
                try:
                    response = await _timed(litellm.acompletion(**kwargs), first, "first")
                except Exception as exc:
                    raise translate(exc, ev) from _cause(exc, ev)
                try:
                    async for chunk in _chunks(response, ev, ctx):
                        yield chunk
                finally:
                    await response.aclose()

    return stage("dispatch", run)


async def _chunks(response: Any, req: Request, ctx: Context) -> AsyncIterator[Chunk]:
    """Pull provider chunks; errors are translated around the pull, never the yield."""
    stream = response.__aiter__()
    timeout = ctx.policy.first_chunk_timeout_s
    which = "first"
    recording = ctx.recording
    while True:
        try:
            raw = await _timed(stream.__anext__(), timeout, which)
        except StopAsyncIteration:
            return
        except Exception as exc:
            raise translate(exc, req) from _cause(exc, req)
        timeout, which = ctx.policy.idle_timeout_s, "next"
        chunk = to_chunk(raw)
        if chunk.usage is not None and not provider_reported_usage(response):
            chunk = Chunk(usage=chunk.usage, usage_estimated=True, model=chunk.model)
        if recording is not None:
            recording.append(chunk)
        yield chunk


async def _whole(
    litellm: ModuleType, kwargs: dict[str, Any], req: Request, ctx: Context
) -> list[Chunk]:
    """A non-streamed call, played back as the chunks of a stream."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("stream", "stream_options")}
    try:
        response = await _timed(
            litellm.acompletion(**kwargs), ctx.policy.first_chunk_timeout_s, "first"
        )
    except Exception as exc:
        raise translate(exc, req) from _cause(exc, req)
    chunks = response_chunks(response)
    if ctx.recording is not None:
        ctx.recording.extend(chunks)
    return chunks


async def _timed(awaitable: Awaitable[T], seconds: float | None, which: str) -> T:
    """``awaitable`` within ``seconds`` (``None``: no limit), else ``ProviderTimeout``."""
    if seconds is None:
        return await awaitable
    try:
        async with asyncio.timeout(seconds):
            return await awaitable
    except TimeoutError:
        raise ProviderTimeout(
            f"no {which} chunk from the provider within {seconds}s (the stream stalled)"
        ) from None


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


def _cause(exc: BaseException, req: Request) -> BaseException | None:
    # Chain the original for debugging, unless its text carries the key.
    if isinstance(exc, ProviderTimeout) or (req.api_key and req.api_key in str(exc)):
        return None
    return exc


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
    return module


async def close_clients() -> None:
    """Close the HTTP clients litellm keeps for the running event loop, and only those.

    litellm pools connections per event loop; call this before a loop you
    made ends (``asyncio.run`` in a CLI, a test's loop) so no connection is
    left to the garbage collector. Other loops' clients stay open and
    pooled (``stages.litellm_clients``). A no-op when litellm was never
    imported.
    """
    await close_loop_clients()
