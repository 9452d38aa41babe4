"""dispatch (litellm): send the request, turn each provider chunk into a ``Chunk``.

consumes: ``Request``
emits: ``Chunk`` per provider chunk (provider-neutral)
passes through: every other event
buffers: nothing

- ``litellm.acompletion(stream=True, stream_options={"include_usage": True},
  max_retries=0)``: litellm's own retries are off, retrying is the pipeline's
  job, once;
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
from collections.abc import AsyncIterator, Awaitable, Mapping
from types import ModuleType
from typing import Any, TypeVar

from pipeline.errors import ProviderTimeout
from pipeline.events import Chunk, Event, Request, ToolFragment
from pipeline.stage import Context, Stage, closing, stage
from stages.litellm_errors import translate

__all__ = ["build_kwargs", "import_litellm", "litellm_dispatch", "to_chunk"]

T = TypeVar("T")


def litellm_dispatch() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                litellm = await import_litellm()
                first = ctx.policy.first_chunk_timeout_s
                try:
                    response = await _timed(litellm.acompletion(**build_kwargs(ev)), first, "first")
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
        if chunk.usage is not None and not _provider_reported_usage(response):
            chunk = Chunk(usage=chunk.usage, usage_estimated=True, model=chunk.model)
        if recording is not None:
            recording.append(chunk)
        yield chunk


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


def build_kwargs(req: Request) -> dict[str, Any]:
    """The keyword arguments of ``litellm.acompletion`` for a normalized request."""
    kwargs: dict[str, Any] = {
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
    return kwargs


def to_chunk(raw: Any) -> Chunk:
    """A litellm ``ModelResponseStream`` as a provider-neutral ``Chunk``."""
    text = reasoning = ""
    fragments: tuple[ToolFragment, ...] = ()
    finish: str | None = None
    choices = raw.choices
    if choices:
        choice = choices[0]
        delta = choice.delta
        if delta is not None:
            text = delta.content or ""
            reasoning = getattr(delta, "reasoning_content", None) or ""
            if delta.tool_calls:
                fragments = tuple(_fragment(tc) for tc in delta.tool_calls)
        finish = choice.finish_reason
    usage = getattr(raw, "usage", None)
    return Chunk(
        text=text,
        reasoning=reasoning,
        tool_fragments=fragments,
        finish_reason=finish,
        usage=_usage_dict(usage) if usage is not None else None,
        model=getattr(raw, "model", None) or "",
    )


def _fragment(tc: Any) -> ToolFragment:
    fn = tc.function
    return ToolFragment(
        index=tc.index,
        id=tc.id or None,
        name=(fn.name or None) if fn is not None else None,
        arguments=(fn.arguments or "") if fn is not None else "",
    )


def _usage_dict(usage: Any) -> dict[str, Any]:
    if isinstance(usage, Mapping):
        return dict(usage)
    dump = getattr(usage, "model_dump", None)
    data = dump() if dump is not None else vars(usage)
    return {k: v for k, v in data.items() if v is not None}


def _provider_reported_usage(response: Any) -> bool:
    """Whether the provider itself reported usage, or litellm invented it.

    With no usage from the server litellm yields an estimate that looks real;
    the raw chunks it keeps (``response.chunks``) then carry no usage at all.
    """
    chunks = getattr(response, "chunks", None) or ()
    return any(getattr(c, "usage", None) is not None for c in chunks)


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
