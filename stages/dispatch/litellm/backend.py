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
- litellm is imported on first use, on a daemon thread (the import takes
  seconds; a Ctrl-C meanwhile ends the program at once instead of waiting
  for it) and with the offline cost map, so nothing waits on the network;
- a bare model name for an OpenAI-compatible server (the profile's
  ``bare_model_provider``) goes to litellm as ``openai/<model>``, with a
  placeholder key when none is given (``build_kwargs``);
- the HTTP response is closed (``aclose``) on every exit path: end, error,
  ``break`` downstream, cancellation;
- the policy's first-chunk and idle timeouts bound each pull from the
  provider (a stall raises ``ProviderTimeout``, which is transient); they
  measure the wait for bytes, not time the event loop was blocked
  (``pipeline.timeouts``);
- a 200 answer that is a document (HTML, JSON), not a stream, raises
  ``MalformedResponse`` naming its content type and first bytes
  (``stages.dispatch.litellm.http``);
- when the retry segment asks (``ctx.attempt.recording``), every chunk is
  recorded for failed-request dumps; the instrument is told of the first
  chunk (``Instrument.first_chunk``);
- litellm's exceptions become ``pipeline.errors`` here, and only here
  (``stages.dispatch.litellm.errors``), chained only as redacted stand-ins.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import os
import sys
import threading
from collections.abc import AsyncIterator, Awaitable
from types import ModuleType
from typing import Any, TypeVar, cast

from pipeline.context import Context
from pipeline.errors import ClientClosed, PipelineError, ProviderTimeout
from pipeline.events import Chunk, Event, Request
from pipeline.profiles import DEFAULT, Profile
from pipeline.runner import closing
from pipeline.secrets import guard_loggers
from pipeline.stage import Stage, stage
from pipeline.timeouts import Stalled, within
from stages.dispatch.litellm.chunks import provider_reported_usage, response_chunks, to_chunk
from stages.dispatch.litellm.clients import close_loop_clients
from stages.dispatch.litellm.errors import translate
from stages.dispatch.litellm.http import not_a_stream, stream_type, unreadable_empty

__all__ = ["NO_KEY", "build_kwargs", "close_clients", "import_litellm", "litellm_dispatch"]

T = TypeVar("T")

#: sent as the key to an OpenAI-compatible server when none is given: the
#: OpenAI client refuses to send a request without one, and servers without
#: authentication ignore it. Plainly not a key, in a log or a server's.
NO_KEY = "no-key"

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
    recording = ctx.attempt.recording if ctx.attempt is not None else None
    content = False
    while True:
        raw = await _call(stream.__anext__(), timeout, which, req, reading=True)
        if raw is _END:
            break
        if which == "first":
            ctx.instrument.first_chunk(ctx)
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
    ctx.instrument.first_chunk(ctx)
    if ctx.attempt is not None and ctx.attempt.recording is not None:
        ctx.attempt.recording.extend(chunks)
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
        error: PipelineError | ClientClosed = ProviderTimeout(
            f"no {which} chunk from the provider within {seconds}s (the stream stalled)"
        )
    except Exception as exc:
        error = translate(exc, req, reading=reading)
    raise error


def build_kwargs(req: Request, profile: Profile = DEFAULT) -> dict[str, Any]:
    """The keyword arguments of ``litellm.acompletion`` for a normalized request."""
    model = litellm_model(req.model, profile)
    kwargs: dict[str, Any] = {
        **profile.extra_params,
        **req.extra,
        "model": model,
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
    elif model != req.model and profile.bare_model_provider == "openai":
        # as the openai SDK does: OPENAI_API_KEY if set, else no key (a placeholder)
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY") or NO_KEY
    if req.api_base:
        kwargs["api_base"] = req.api_base
    for name in profile.drop_params:
        kwargs.pop(name, None)
    return kwargs


def litellm_model(model: str, profile: Profile = DEFAULT) -> str:
    """The model string litellm needs: ``openai/<model>`` for a bare name sent to an
    OpenAI-compatible server (``meta-llama/Llama-3.1-8B`` is bare too: litellm knows
    no provider "meta-llama"), else ``model`` unchanged."""
    provider = profile.bare_model_provider
    if provider is None:
        return model
    prefix, slash, _ = model.partition("/")
    if slash and prefix.lower() in _litellm_providers():
        return model
    return f"{provider}/{model}"


def _litellm_providers() -> frozenset[str]:
    module = sys.modules.get("litellm")
    if module is None or not hasattr(module, "provider_list"):
        module = _load_litellm()
    return frozenset(str(getattr(p, "value", p)) for p in module.provider_list)


async def import_litellm() -> ModuleType:
    """litellm, imported on first use off the event loop, offline-safe.

    The import (seconds) runs once per process, on a daemon thread that
    every caller waits for. Not ``asyncio.to_thread``: the executor's
    threads are joined when the loop and the interpreter end, so a Ctrl-C
    during the import would wait for it to finish.
    """
    module = sys.modules.get("litellm")
    if module is not None and hasattr(module, "acompletion"):
        return module
    loop = asyncio.get_running_loop()
    done: asyncio.Future[ModuleType] = loop.create_future()
    source = _start_import()

    def wake(_: concurrent.futures.Future[ModuleType]) -> None:
        with contextlib.suppress(RuntimeError):  # that loop closed (its caller was cancelled)
            loop.call_soon_threadsafe(_settle, done, source)

    source.add_done_callback(wake)
    return await done


def _settle(
    done: asyncio.Future[ModuleType], source: concurrent.futures.Future[ModuleType]
) -> None:
    if done.done():  # the waiter was cancelled
        return
    error = source.exception()
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(source.result())


_import_lock = threading.Lock()
_import: concurrent.futures.Future[ModuleType] | None = None


def _start_import() -> concurrent.futures.Future[ModuleType]:
    """The one import of litellm (started here if it was not yet); a failed one
    is started again by the next caller."""
    global _import
    with _import_lock:
        if _import is None or (_import.done() and _import.exception() is not None):
            _import = concurrent.futures.Future()
            _import.set_running_or_notify_cancel()  # a waiter's cancel never cancels it
            threading.Thread(
                target=_import_into, args=(_import,), name="llmpipe-import-litellm", daemon=True
            ).start()
        return _import


def _import_into(future: concurrent.futures.Future[ModuleType]) -> None:
    try:
        future.set_result(_load_litellm())
    except BaseException as exc:  # handed to the waiters, raised there
        future.set_exception(exc)


def _load_litellm() -> ModuleType:
    # Without these, importing litellm fetches a cost map (and, on first
    # Anthropic OAuth use, a beta-headers table) over the network, which
    # offline stalls for seconds. A value the user set wins.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    module = importlib.import_module("litellm")
    # litellm prints "Give Feedback / Get Help" banners on errors otherwise.
    setattr(module, "suppress_debug_info", True)  # noqa: B010
    # Its cost calculation counts tokens after every call, and for a model named
    # "...llama-3..." (common on local servers) fetches a tokenizer from the
    # Hugging Face hub: offline, a stall of about 25 s. The bundled OpenAI
    # tokenizer instead, unless the application chose.
    if getattr(module, "disable_hf_tokenizer_download", None) is None:
        setattr(module, "disable_hf_tokenizer_download", True)  # noqa: B010
    guard_loggers(LIBRARY_LOGGERS)
    return module


async def close_clients() -> None:
    """Close the HTTP clients litellm keeps for the running event loop, and only those.

    litellm pools connections per event loop; call this before a loop you
    made ends (``asyncio.run`` in a CLI, a test's loop) so no connection is
    left to the garbage collector. Other loops' clients stay open and
    pooled (``stages.dispatch.litellm.clients``). A no-op when litellm was never
    imported.
    """
    await close_loop_clients()
