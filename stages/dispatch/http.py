"""What every HTTP backend decides the same way: error classes by status, media types.

The litellm backend and the direct one both turn an HTTP status into the same
``pipeline.errors`` class (``status_error``), recognise a context-window
error by the same words, name a failed connection by the same errno table,
and tell an event stream from a document by the same media types, so a
failure reads the same whichever backend met it.
"""

from __future__ import annotations

import errno
import socket

from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    redact,
)

__all__ = [
    "CONTEXT_HINTS",
    "DOCUMENT_TYPES",
    "NAME_UNKNOWN",
    "PEEK_BYTES",
    "SNIPPET_CHARS",
    "STREAM_TYPES",
    "UNREACHABLE",
    "describe",
    "page_note",
    "status_error",
]

#: words of a 400 that means the prompt does not fit the context window
CONTEXT_HINTS = (
    "context length",
    "context_length_exceeded",
    "maximum context",
    "context window",
    "prompt is too long",
    "too many tokens",
)

#: why a connection could not be made, by errno (socket.gaierror: the name lookup)
UNREACHABLE = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.EADDRNOTAVAIL: "address not available",
}
#: the name-lookup errors that mean the host name does not exist
NAME_UNKNOWN = frozenset(
    code
    for code in (getattr(socket, "EAI_NONAME", None), getattr(socket, "EAI_NODATA", None))
    if code is not None
)

#: media types a streamed answer comes in (SSE, and newline-delimited JSON for Ollama)
STREAM_TYPES = frozenset(
    {
        "text/event-stream",
        "application/x-ndjson",
        "application/jsonl",
        "application/json-seq",
        "application/vnd.amazon.eventstream",
    }
)
#: media types that are documents, never a stream
DOCUMENT_TYPES = frozenset(
    {
        "text/html",
        "application/xhtml+xml",
        "application/json",
        "application/problem+json",
        "application/xml",
        "text/xml",
    }
)
#: how many bytes of an unexpected body an error quotes
PEEK_BYTES = 160
#: how many characters of an error page an error quotes
SNIPPET_CHARS = 200


def status_error(status: int | None) -> type[ProviderError]:
    """The error class of an HTTP status (``ProviderError`` when it says nothing)."""
    if status is None:
        return ProviderError
    if status == 429:
        return RateLimited
    if status in (401, 403):
        return AuthenticationFailed
    if status == 404:
        return ModelNotFound
    if status in (408, 504):
        return ProviderTimeout
    if status == 409 or status >= 500:
        return ProviderUnavailable
    if status in (400, 413, 422):
        return BadRequest
    return ProviderError


def page_note(status: int, ctype: str | None, text: str) -> str:
    """`` (HTTP 502, text/html: '<html>...')``: what an error page held, said in one line."""
    snippet = " ".join(text.split())[:SNIPPET_CHARS]
    return f" (HTTP {status}, {ctype or 'no content type'}: {redact(snippet)!r})"


def describe(ctype: str | None, head: bytes) -> str:
    """``text/html, starting '<html>...'``: a body's type and first bytes, redacted."""
    shown = redact(head).decode("utf-8", "replace")
    return f"{ctype or 'no content type'}, starting {shown!r}" if head else (ctype or "no type")
