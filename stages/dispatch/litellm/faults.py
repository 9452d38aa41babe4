"""Two kinds of failure that litellm reports as if the provider were down.

litellm wraps everything that goes wrong inside a call in a 500-like
``InternalServerError`` or ``APIConnectionError``, which would make it transient
and retried. Two families are neither:

- **the request could not be built** (``request_fault``): a body that does not
  serialise (a set, NaN, nesting too deep), a header value with CR/LF, a URL
  without a host or with a bad port. Nothing was sent; sending again fails the
  same way. It is the caller's error: ``InvalidRequest``, never retried.
- **the answer could not be read** (``response_fault``): bytes that are not
  UTF-8, data that is not JSON, fields of the wrong type, nesting too deep, gzip
  that does not decode, broken HTTP framing. ``MalformedResponse``, not transient.

Both are recognised by the exceptions in the chain (``__cause__``/``__context__``,
litellm's ``original_exception``), by type first and by message where a type is
shared with other meanings. ``body_note`` names what an error response held
when litellm's message does not (an HTML 502 page says only "Error code: 502").
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from pipeline.errors import InvalidRequest, MalformedResponse, redact
from stages.dispatch.http import SNIPPET_CHARS, page_note

__all__ = ["body_note", "chain", "request_fault", "response_fault"]


# (exception type name, words its message must contain, the request field to blame)
_REQUEST_FAULTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("UnicodeEncodeError", (), "a text field (it is not UTF-8)"),
    ("TypeError", ("serializ",), "the request body (a value is not JSON-serialisable)"),
    ("ValueError", ("json compliant",), "the request body (NaN or infinity is not JSON)"),
    ("RecursionError", ("encod",), "the request body (nested too deeply)"),
    ("ValueError", ("header",), "a header (api_key or extra headers)"),
    ("LocalProtocolError", ("header",), "a header (api_key or extra headers)"),
    ("InvalidURL", (), "api_base"),
    ("InvalidUrlClientError", (), "api_base"),
    ("ValueError", ("port",), "api_base"),
)

_RESPONSE_FAULTS: dict[str, str] = {
    "UnicodeDecodeError": "bytes that are not UTF-8",
    "JSONDecodeError": "data that is not JSON",
    "DecodingError": "a body whose content encoding does not decode",
    "ContentEncodingError": "a body whose content encoding does not decode",
    "BadHttpMessage": "broken HTTP framing",
    "LineTooLong": "broken HTTP framing (a line too long)",
    "ValidationError": "fields of the wrong type",
}
_SHAPE_ERRORS = frozenset({"AttributeError", "TypeError", "KeyError", "IndexError"})
#: a body cut short (the connection dropped) is transient, not malformed (aiohttp
#: reports a bad chunk size with the same classes: that one is malformed)
_CUT_SHORT = frozenset({"TransferEncodingError", "ContentLengthError", "ClientPayloadError"})


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it chains, each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        for linked in (
            node.__cause__,
            node.__context__,
            getattr(node, "original_exception", None),
        ):
            if isinstance(linked, BaseException):
                todo.append(linked)


def _names(exc: BaseException) -> set[str]:
    return {k.__name__ for k in type(exc).__mro__}


def request_fault(exc: BaseException) -> InvalidRequest | None:
    """``InvalidRequest`` when ``exc`` says the HTTP request could not be built."""
    for node in chain(exc):
        names, text = _names(node), str(node).lower()
        for name, words, field in _REQUEST_FAULTS:
            if name in names and all(w in text for w in words):
                if name == "UnicodeEncodeError" and "ascii" in text:
                    field = "a header (api_key or extra headers: not ASCII)"
                return InvalidRequest(
                    field, f"the request could not be built for sending: {redact(str(node))}"
                )
    return None


def response_fault(exc: BaseException, *, reading: bool = False) -> MalformedResponse | None:
    """``MalformedResponse`` when ``exc`` says the provider's answer could not be read.

    ``reading``: ``exc`` was raised while reading the answer (not while sending),
    so Python's own errors (``AttributeError``, ``TypeError``, ...) mean the
    answer had a shape the parser did not expect.
    """
    for node in chain(exc):
        names = _names(node)
        if names & _CUT_SHORT and "chunk size" not in str(node).lower():
            continue
        what = next((v for k, v in _RESPONSE_FAULTS.items() if k in names), None)
        if what is None and reading and names & _SHAPE_ERRORS:
            what = "an answer of an unexpected shape"
        if what is None and "error" in names and type(node).__module__ == "zlib":
            what = "a body whose compression does not decode"
        if what is None and "RecursionError" in names and "decod" in str(node).lower():
            what = "data nested too deeply"
        if what is not None:
            return MalformedResponse(
                f"the provider sent {what}: {redact(str(node))[: SNIPPET_CHARS * 2]}"
            )
    return None


def body_note(exc: BaseException, message: str) -> str:
    """`` (HTTP 502, text/html: '<html>...')`` when the message does not show the body."""
    response: Any = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if not isinstance(status, int) or status < 400:
        return ""
    try:
        text = response.text
        ctype = response.headers.get("content-type", "no content type")
    except Exception:  # an unread streamed body, or no body at all
        return ""
    if not isinstance(text, str) or not text.strip():
        return ""
    if " ".join(text.split())[:40] in message or _json_message_shown(text, message):
        return ""
    return page_note(status, ctype, text)


def _json_message_shown(text: str, message: str) -> bool:
    """Whether litellm already quoted the provider's JSON error message."""
    try:
        body = json.loads(text)
    except ValueError:
        return False
    error = body.get("error") if isinstance(body, dict) else None
    detail = error.get("message") if isinstance(error, dict) else error
    return isinstance(detail, str) and detail[:40] in message
