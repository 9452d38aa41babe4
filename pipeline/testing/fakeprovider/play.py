"""Playing a ``Reply`` onto a connection: the format, the framing, the scripted faults.

A streamed reply is written step by step as SSE events (OpenAI or Anthropic,
``formats``), chunked or delimited by the connection's close; ``Stall``
waits (noticing a client that leaves), ``Drop`` resets the connection,
``Wire`` writes raw bytes outside the framing, ``Raw`` a raw event. A reply
that is not streamed (the request did not ask for a stream, or an error, or
a raw body) is one response with a ``Content-Length``.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from pipeline.testing.fakeprovider.formats import AnthropicFormat, OpenAIFormat, error_json
from pipeline.testing.fakeprovider.http import LAST_CHUNK, Connection, chunk, head
from pipeline.testing.fakeprovider.script import (
    Api,
    Done,
    Drop,
    Raw,
    RecordedRequest,
    Reply,
    Stall,
    Step,
    Wire,
)

__all__ = ["play"]


async def play(
    reply: Reply,
    req: RecordedRequest,
    api: Api | None,
    conn: Connection,
    keep: bool,
    closing: Callable[[], None],
) -> bool:
    """Answer ``req`` with ``reply``; whether the connection stays open. ``closing()``
    is called before the server closes it (so the record says who closed first)."""
    extra = {k.lower(): v for k, v in reply.headers.items()}
    keep = keep and extra.get("connection", "").lower() != "close"
    if reply.delay and await conn.wait_eof(reply.delay):
        return False
    body = req.body if isinstance(req.body, dict) else {}
    model = str(body.get("model", "fake-model"))
    enc = (
        AnthropicFormat(req.index, model, reply.steps)
        if api == "anthropic"
        else OpenAIFormat(req.index, model)
    )
    streamed = body.get("stream") is True and reply.body is None and not reply.error_detail
    headers = {"content-type": "text/event-stream" if streamed else "application/json"}
    chunked = reply.framing == "chunked"
    keep = keep and chunked  # without a length or chunks, only the close ends the body
    headers |= {"cache-control": "no-cache"} if streamed else {}
    headers |= {"transfer-encoding": "chunked"} if streamed and chunked else {}
    headers |= extra | ({} if keep else {"connection": "close"})
    if not streamed:
        for step in reply.steps:  # only the timing/fault steps apply
            if isinstance(step, Stall) and await conn.wait_eof(step.seconds):
                return False
            if isinstance(step, Drop):
                return _drop(conn, closing)
        data = (
            reply.body
            if reply.body is not None
            else (
                error_json(api, reply.error_detail)
                if reply.error_detail
                else msgspec.json.encode(enc.message(reply.steps))
            )
        )
        return await _finish(
            closing,
            conn,
            keep,
            head(reply.status, headers | {"content-length": str(len(data))}) + data,
        )
    await conn.write(head(reply.status, headers))
    steps = reply.steps
    auto_end = (
        reply.auto_end
        and not any(isinstance(s, Done | Drop) for s in steps)
        and (not steps or steps[-1] != Stall(None))
    )
    todo: tuple[Step | None, ...] = (*steps, None) if auto_end else steps
    for item in todo:
        if conn.eof:
            return False
        if isinstance(item, Stall):
            if await conn.wait_eof(item.seconds):
                return False
        elif isinstance(item, Drop):
            return _drop(conn, closing)
        elif isinstance(item, Wire):
            await conn.write(item.data)
        else:  # None: the automatic end of stream
            chunks = (
                enc.end()
                if item is None
                else ([item.data] if isinstance(item, Raw) else enc.events(item))
            )
            for data in filter(None, chunks):  # an empty chunk would end the body
                await conn.write(chunk(data) if chunked else data)
    return await _finish(closing, conn, keep, LAST_CHUNK if chunked else b"")


async def _finish(closing: Callable[[], None], conn: Connection, keep: bool, data: bytes) -> bool:
    if not keep:  # record before the client can react to the final bytes
        closing()
    await conn.write(data)
    return keep


def _drop(conn: Connection, closing: Callable[[], None]) -> bool:
    closing()
    conn.abort()
    return False
