"""What went wrong with a direct call, as ``pipeline.errors``: the only place it is translated.

- an HTTP error status (``http_error``) gets the class the litellm backend
  gives the same status (``stages.dispatch.http.status_error``; a 400 about
  the context window is ``ContextWindowExceeded``, one about the content
  policy ``ContentFiltered``), the provider's own words from its JSON error
  body (``error.message``, ``message``, ``detail``) or, for a page that is not
  JSON, the status with the page's type and first bytes, and every response
  header (lower-cased: ``retry-after``, ``retry-after-ms`` for the retry
  stage);
- an error event inside a 200 stream (``stream_error``) is classed by its
  ``code`` when that is an HTTP status (Groq sends 400), else by its ``type``
  (a rate limit, a bad request), else it is the server failing mid-stream
  (``ProviderUnavailable``, transient);
- aiohttp's exceptions (``transport_error``): no connection at all is
  ``ProviderUnreachable`` naming host, port and why; a connection dropped or
  a body cut short is ``ProviderUnavailable``; broken framing and a body
  whose compression does not decode are ``MalformedResponse`` (asking again
  gets the same bytes); a bad URL is the caller's ``InvalidRequest``.

Every message is scrubbed of the request's key and of anything shaped like
a key, and the foreign exception is chained only as a redacted stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    MalformedResponse,
    PipelineError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
    redact,
)
from pipeline.request import Request
from pipeline.secrets import stand_in
from stages.dispatch.http import CONTEXT_HINTS, NAME_UNKNOWN, UNREACHABLE, page_note, status_error
from stages.dispatch.openai.wire import ErrorBody

__all__ = ["http_error", "provider_message", "stream_error", "transport_error"]

#: words of an error that mean the content policy refused the request
FILTER_HINTS = ("content_filter", "content_policy", "content management policy")
#: how many characters of a provider's message an error keeps
MESSAGE_CHARS = 2000


def http_error(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    ctype: str | None,
    req: Request,
    provider: str,
) -> ProviderError:
    """The error for an HTTP error status and the body that came with it."""
    message, code = provider_message(body), _error_code(body)
    if message is None:  # a page, not the provider's words: say what it held
        text = body.decode("utf-8", "replace")
        message = f"Error code: {status}" + (page_note(status, ctype, text) if text.strip() else "")
    lowered = {k.lower(): v for k, v in headers.items()}
    return _error(status_error(status), message, req, provider, status, lowered, code)


def stream_error(error: ErrorBody | str, req: Request, provider: str) -> ProviderError:
    """The error for an error event inside a 200 stream (or a 200 JSON error body)."""
    if isinstance(error, str):
        error = ErrorBody(message=error)
    status = _status(error.code)
    cls = status_error(status) if status is not None else _by_type(error.type)
    message = error.message or error.type or "the provider sent an error event"
    return _error(cls, message, req, provider, status, {}, f"{error.code} {error.type}")


def _error(
    cls: type[ProviderError],
    message: str,
    req: Request,
    provider: str,
    status: int | None,
    headers: Mapping[str, str],
    code: str = "",
) -> ProviderError:
    text = redact(" ".join(message.split())[:MESSAGE_CHARS], req.api_key)
    lowered = f"{text} {code}".lower()
    if cls is BadRequest and any(h in lowered for h in CONTEXT_HINTS):
        cls = ContextWindowExceeded
    elif cls is BadRequest and any(h in lowered for h in FILTER_HINTS):
        cls = ContentFiltered
    return cls(text, status_code=status, provider=provider, headers=headers)


def provider_message(body: bytes) -> str | None:
    """The provider's words in a JSON error body, if it is one."""
    try:
        doc: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(doc, list) and doc:  # Google-style: a list of one error object
        doc = doc[0]
    if not isinstance(doc, dict):
        return None
    error = doc.get("error")
    for source in (error, doc):
        if isinstance(source, dict):
            for key in ("message", "detail"):
                if isinstance(source.get(key), str) and source[key].strip():
                    return str(source[key]).strip()
    if isinstance(error, str) and error.strip():
        return error.strip()
    return None


def _error_code(body: bytes) -> str:
    """``error.code`` and ``error.type`` of a JSON error body (``""``: none), for the hints."""
    try:
        doc: Any = msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return ""
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict):
        return ""
    return f"{error.get('code') or ''} {error.get('type') or ''}"


def _status(code: str | int | None) -> int | None:
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if isinstance(code, int) and 400 <= code <= 599 else None


def _by_type(kind: str | None) -> type[ProviderError]:
    word = (kind or "").lower()
    if "rate_limit" in word or "quota" in word:
        return RateLimited
    if "invalid_request" in word or "bad_request" in word:
        return BadRequest
    if "auth" in word or "permission" in word:
        return AuthenticationFailed
    return ProviderUnavailable


def transport_error(exc: BaseException, req: Request, url: str, *, reading: bool) -> PipelineError:
    """The error for an exception aiohttp raised sending (``reading=False``) or reading."""
    import aiohttp

    error = _transport_error(exc, aiohttp, req, url, reading)
    error.__cause__ = stand_in(exc, req.api_key)
    return error


def _transport_error(
    exc: BaseException, aiohttp: Any, req: Request, url: str, reading: bool
) -> PipelineError:
    what = redact(str(exc) or type(exc).__name__, req.api_key)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        host, port = exc.host, exc.port
        lookup = "host not found" if _errno(exc) in NAME_UNKNOWN else "name lookup failed"
        return _unreachable(host, port, lookup)
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientSSLError
    ):
        reason = UNREACHABLE.get(_errno(exc) or 0)
        if reason is not None:
            return _unreachable(exc.host, exc.port, reason)
        return ProviderUnavailable(f"cannot connect to {exc.host}:{exc.port} ({what})")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return ProviderTimeout(f"no connection to the provider within the connect timeout ({what})")
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidRequest("api_base", f"not a URL the request can go to: {what}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return _payload_error(exc, what)
    if isinstance(exc, aiohttp.ClientResponseError):  # a status line or headers that do not parse
        return MalformedResponse(f"the provider sent broken HTTP framing: {what}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        when = "mid-stream" if reading else "before answering"
        return ProviderUnavailable(f"the provider closed the connection {when} ({what})")
    if isinstance(exc, TimeoutError):
        return ProviderTimeout(f"the provider timed out ({what})")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ProviderUnavailable(f"the connection to the provider failed ({what})")
    if isinstance(exc, ValueError | UnicodeError):  # a header aiohttp cannot send
        return InvalidRequest(
            "a header (api_key or extra headers)", f"the request could not be built: {what}"
        )
    return ProviderUnavailable(f"the call to {url} failed: {type(exc).__name__}: {what}")


def _payload_error(exc: BaseException, what: str) -> PipelineError:
    causes = " ".join(
        f"{type(c).__name__} {c}" for c in (exc, exc.__cause__, exc.__context__) if c is not None
    ).lower()
    if "contentencoding" in causes or "content-encoding" in causes or "decompress" in causes:
        return MalformedResponse(
            f"the provider sent a body whose content encoding does not decode: {what}"
        )
    if "chunk size" in causes or "badhttpmessage" in causes or "linetoolong" in causes:
        return MalformedResponse(f"the provider sent broken HTTP framing: {what}")
    return ProviderUnavailable(
        f"the connection dropped mid-stream (the body was cut short: {what})"
    )


def _unreachable(host: str | None, port: int | None, reason: str) -> ProviderUnreachable:
    place = f"{host}:{port}" if host and port else host or "the provider"
    return ProviderUnreachable(
        f"cannot connect to {place} ({reason})", host=host, port=port, reason=reason
    )


def _errno(exc: Any) -> int | None:
    os_error = getattr(exc, "os_error", None)
    code = getattr(os_error, "errno", None)
    return code if isinstance(code, int) else getattr(exc, "errno", None)
