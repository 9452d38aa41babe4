"""``OpenAIBackend``: direct HTTP to an OpenAI-compatible chat-completions endpoint.

The fast backend: aiohttp reads the body as bytes, ``sse.SSESplitter`` cuts
it into events, msgspec decodes each payload into typed Structs and
``wire.stream_chunk`` makes the ``Chunk`` (a few µs a chunk, against
litellm's hundreds). It yields what the litellm backend yields for the same
answer, and keeps what litellm loses (see ``wire``): refusals, the model the
provider names, list-of-parts content, and a 200 whose body is one JSON
``chat.completion`` instead of a stream, read as the whole answer.

- the request is ``outgoing.outgoing``'s, sent on the running loop's session
  (``sessions``); nothing is retried and nothing is timed here but the
  connect (the dispatch stage bounds every pull);
- the body is read as it comes (``readany``): no line-length limit; a
  ``[DONE]`` ends the answer (the rest of the body is read and ignored, as
  the openai SDK does, so the connection can be reused);
- a status of 400 or more raises ``errors.http_error`` with the provider's
  message and headers; an error event in the stream ``errors.stream_error``;
  a 200 that is an HTML or XML page, or JSON that is not a completion,
  ``MalformedResponse`` naming its type and first bytes; a stream that ends
  (the connection closed) before its finish reason and its ``[DONE]`` is a
  dropped connection (``ProviderUnavailable``, transient);
- the HTTP response is released on every exit path; closing the generator
  early (a consumer that stops, cancellation, a timeout) closes the
  connection at once, so the server sees the client go.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from pipeline.context import Context
from pipeline.errors import MalformedResponse, ProviderUnavailable
from pipeline.events import Chunk, Request
from stages.dispatch.http import DOCUMENT_TYPES, PEEK_BYTES, STREAM_TYPES, describe
from stages.dispatch.openai.errors import http_error, stream_error, transport_error
from stages.dispatch.openai.outgoing import Outgoing, outgoing
from stages.dispatch.openai.sessions import LoopSessions
from stages.dispatch.openai.sse import SSESplitter
from stages.dispatch.openai.wire import (
    DECODE_ERRORS,
    STREAM_DECODER,
    completion_chunks,
    decode_completion,
    malformed,
    stream_chunk,
)

__all__ = ["ERROR_BODY_BYTES", "OpenAIBackend"]

#: how much of an error response's body is read for its message
ERROR_BODY_BYTES = 64 * 1024
_DONE = b"[DONE]"
_JSON_TYPES = frozenset({"application/json", "application/problem+json"})


class OpenAIBackend:
    """Sends straight to OpenAI-compatible endpoints (see the module)."""

    __slots__ = ("_sessions",)

    name = "openai"

    def __init__(self) -> None:
        self._sessions = LoopSessions()

    def __repr__(self) -> str:
        return "OpenAIBackend()"

    async def prepare(self, request: Request, ctx: Context) -> None:
        """Import aiohttp (about 0.3 s, once a process), before dispatch times the answer."""
        if "aiohttp" not in sys.modules:
            import aiohttp  # noqa: F401

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        out = outgoing(request, ctx.profile, stream=stream)
        session, proxy = await self._sessions.route(out.url, ctx.policy.max_in_flight)
        response = await _post(session, out, request, proxy)
        complete = False
        try:
            ctype = _media_type(response.headers.get("Content-Type"))
            if response.status >= 400:
                body = await _read(response, request, out, ERROR_BODY_BYTES)
                raise http_error(
                    response.status, response.headers, body, ctype, request, out.provider
                )
            if ctype in DOCUMENT_TYPES:
                for whole in await _document(response, ctype, request, out):
                    yield whole
                complete = True
                return
            feed = SSESplitter().feed
            readany = response.content.readany
            decode, convert = STREAM_DECODER.decode, stream_chunk  # the per-event path, local
            events = content = finished = done = False
            while not done and (piece := await _next(readany, request, out)):
                for _event, data in feed(piece):
                    events = True
                    if data.startswith(b"[") and data.strip() == _DONE:
                        await _drain(readany)
                        done = True
                        break
                    try:
                        raw = decode(data)
                    except DECODE_ERRORS:
                        raw = None
                    if raw is None:
                        raise malformed(data)  # outside the except: nothing foreign chained
                    if raw.error is not None:
                        raise stream_error(raw.error, request, out.provider)
                    chunk = convert(raw)
                    if chunk is not None:
                        if chunk.finish_reason is not None:
                            finished = True
                        elif not content:
                            content = bool(chunk.text or chunk.reasoning or chunk.tool_fragments)
                        yield chunk
            complete = True
            if not finished:
                _check_end(events, content, ctype)
        finally:
            if complete:
                response.release()
            else:
                response.close()  # the server sees the connection go at once

    async def aclose(self) -> None:
        """Close the running loop's session (the other loops' stay open)."""
        await self._sessions.aclose()


async def _post(session: Any, out: Outgoing, request: Request, proxy: Any) -> Any:
    try:
        return await session.post(
            out.url, data=out.body, headers=out.headers, proxy=proxy[0], proxy_auth=proxy[1]
        )
    except Exception as exc:
        failed = transport_error(exc, request, out.url, reading=False)
    raise failed  # outside the except: nothing foreign chained


async def _next(readany: Callable[[], Awaitable[bytes]], request: Request, out: Outgoing) -> bytes:
    """The next piece of the body (``b""`` at its end), read failures translated."""
    try:
        return await readany()
    except Exception as exc:
        failed = transport_error(exc, request, out.url, reading=True)
    raise failed


async def _drain(readany: Callable[[], Awaitable[bytes]]) -> None:
    """Read what follows ``[DONE]`` and keep nothing (the connection can then be reused)."""
    with contextlib.suppress(Exception):
        while await readany():
            pass


def _check_end(events: bool, content: bool, ctype: str | None) -> None:
    """A stream that ended without a finish reason: cut short, unless it said nothing.

    After content, the answer was cut off (the connection closed, or the server
    gave up), however the stream ended: a transient ``ProviderUnavailable``, as
    litellm reports it, never a silent "stop". With no content at all it is an
    empty answer (``empty_check`` says so), or, when it held no events and was
    not an event stream either, a ``MalformedResponse``.
    """
    if content:
        raise ProviderUnavailable(
            "the stream ended before the answer did (content, then no finish reason):"
            " it was cut off"
        )
    if not events and ctype is not None and ctype not in STREAM_TYPES:
        raise MalformedResponse(
            f"the provider's answer held no events: HTTP 200 with {ctype}, not text/event-stream"
        )


async def _document(response: Any, ctype: str, request: Request, out: Outgoing) -> list[Chunk]:
    """A 200 whose body is a document: a JSON completion is the whole answer; else an error."""
    if ctype not in _JSON_TYPES:
        head = await _read(response, request, out, PEEK_BYTES)
        raise MalformedResponse(
            "the provider answered a streaming request with a document, not an event stream:"
            f" HTTP 200, {describe(ctype, head[:PEEK_BYTES])}"
        )
    body = await _read(response, request, out, None)
    whole = decode_completion(body)
    if whole.error is not None:
        raise stream_error(whole.error, request, out.provider)
    if whole.choices is None:
        raise MalformedResponse(
            "the provider answered with a JSON document that is not a chat completion:"
            f" HTTP 200, {describe(ctype, body.strip()[:PEEK_BYTES])}"
        )
    return completion_chunks(whole)


async def _read(response: Any, request: Request, out: Outgoing, limit: int | None) -> bytes:
    """The body (its first ``limit`` bytes), read failures translated."""
    try:
        if limit is None:
            data: bytes = await response.read()
            return data
        pieces: list[bytes] = []
        size = 0
        while size < limit and (piece := await response.content.readany()):
            pieces.append(piece)
            size += len(piece)
        return b"".join(pieces)[:limit]
    except Exception as exc:
        failed = transport_error(exc, request, out.url, reading=True)
    raise failed


def _media_type(value: str | None) -> str | None:
    if not value or not value.strip():
        return None
    return value.split(";", 1)[0].strip().lower()
