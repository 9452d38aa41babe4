"""What litellm lets us see of a streamed HTTP response: its content type, its first bytes.

A provider (or a proxy, a captive portal, a wrong ``api_base``) that answers a
streaming request with an HTML page or a JSON document and status 200 yields no
events at all; litellm turns that into an empty answer, which would be retried as
if the model had said nothing. ``not_a_stream`` recognises such an answer from
its content type before anything is read, and ``first_bytes`` reads the start of
the body, so the error can say what arrived.

Only public attributes are read: litellm's ``_hidden_params["additional_headers"]``
(the response headers it keeps for callers) and the stream object it wraps.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pipeline.errors import MalformedResponse
from pipeline.timeouts import within
from stages.dispatch.http import DOCUMENT_TYPES, PEEK_BYTES, STREAM_TYPES, describe

__all__ = [
    "STREAM_TYPES",
    "content_type",
    "first_bytes",
    "not_a_stream",
    "stream_type",
    "unreadable_empty",
]


def content_type(response: Any) -> str | None:
    """The response's media type (lower case, no parameters), when litellm kept it."""
    hidden = getattr(response, "_hidden_params", None)
    headers = hidden.get("additional_headers") if isinstance(hidden, dict) else None
    if not isinstance(headers, dict):
        return None
    value = headers.get("llm_provider-content-type")
    if not isinstance(value, str) or not value.strip():
        return None
    return value.split(";", 1)[0].strip().lower()


def _body(response: Any, *, open_it: bool = False) -> Any:
    """The HTTP body under litellm's stream, if there is one: the openai SDK's
    httpx response, or litellm's own line iterator (opened as an async iterator
    with ``open_it``). ``None`` when litellm streams from memory (its fake
    streaming of a non-streamed answer, whose JSON content type is no sign of
    anything wrong)."""
    stream = getattr(response, "completion_stream", None)
    raw = getattr(getattr(stream, "response", None), "aiter_raw", None)
    if raw is not None:
        return raw() if open_it else raw
    lines = getattr(stream, "streaming_response", None)
    return lines if hasattr(lines, "__anext__") else None


async def first_bytes(response: Any, seconds: float | None) -> bytes:
    """Up to ``PEEK_BYTES`` of the body, best effort (empty when it cannot be read)."""
    pieces = _body(response, open_it=True)
    if pieces is None:
        return b""
    out = b""
    # the end, a stall, or a body broken too: what we have is what we say
    with contextlib.suppress(StopAsyncIteration, Exception):
        while len(out) < PEEK_BYTES:
            piece = await within(pieces.__anext__(), seconds)
            out += piece if isinstance(piece, bytes) else str(piece).encode() + b"\n"
    close = getattr(pieces, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
    return out[:PEEK_BYTES]


def stream_type(response: Any) -> str | None:
    """The media type of the HTTP body litellm is streaming, or ``None`` when it is
    not known or litellm streams from memory. Read it before the stream ends
    (litellm lets go of the body then)."""
    return content_type(response) if _body(response) is not None else None


async def not_a_stream(
    response: Any, ctype: str | None, seconds: float | None
) -> MalformedResponse | None:
    """An error when the body (of type ``ctype``) is a document, not a stream."""
    if ctype is None or ctype not in DOCUMENT_TYPES:
        return None
    head = await first_bytes(response, seconds)
    return MalformedResponse(
        f"the provider answered a streaming request with a document, not an event stream:"
        f" HTTP 200, {describe(ctype, head)}"
    )


def unreadable_empty(ctype: str | None) -> MalformedResponse | None:
    """An error for a stream that gave nothing and was not an event stream either."""
    if ctype is None or ctype in STREAM_TYPES:
        return None
    return MalformedResponse(
        f"the provider's answer held no events: HTTP 200 with {ctype}, not text/event-stream"
    )
