"""litellm's exceptions as ``pipeline.errors``: the only place they are translated.

Classification goes by litellm's exception class first and the HTTP status
second, so a provider litellm maps oddly (403 as a bare ``APIError``, 529
overloaded) still lands on the right branch. A failure to connect at all
(refused, host not found) becomes ``ProviderUnreachable`` naming host and
port, found in the exception's causes. Messages are the provider's words,
once: litellm's ``litellm.InternalServerError: InternalServerError:
OpenAIException - `` prefixes and JSON wrappers are taken off
(``clean_message``), and they are scrubbed of the request's API key and of
anything shaped like a key.

One failure is not the provider's at all: httpx's "the client has been
closed" means a pooled client was closed while still in use. litellm
reports it as a 500, which would be retried as transient and meet the same
closed client every time; it becomes ``ClientClosed``, an internal error
raised at once.

Requests that could not be built and answers that could not be read are told
apart first (``stages.dispatch.litellm.faults``): litellm reports both as if the
provider had failed.
"""

from __future__ import annotations

import ast
import json
import re
import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ClientClosed,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    ModelNotFound,
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
from stages.dispatch.http import CONTEXT_HINTS, NAME_UNKNOWN, UNREACHABLE, status_error
from stages.dispatch.litellm.faults import body_note, request_fault, response_fault

__all__ = ["clean_message", "response_headers", "translate"]

_CREDENTIAL_HINTS = ("missing credentials", "api_key client option must be set")

#: httpx's RuntimeError for a request on a closed client, however litellm wraps it
_CLOSED_CLIENT = "client has been closed"

# litellm class name -> our class; checked along the exception's MRO
_BY_CLASS: dict[str, type[ProviderError]] = {
    "ContextWindowExceededError": ContextWindowExceeded,
    "ContentPolicyViolationError": ContentFiltered,
    "RateLimitError": RateLimited,
    "AuthenticationError": AuthenticationFailed,
    "PermissionDeniedError": AuthenticationFailed,
    "NotFoundError": ModelNotFound,
    "Timeout": ProviderTimeout,
    "APITimeoutError": ProviderTimeout,
    "TimeoutException": ProviderTimeout,
    "MidStreamFallbackError": ProviderUnavailable,
    "InternalServerError": ProviderUnavailable,
    "BadGatewayError": ProviderUnavailable,
    "ServiceUnavailableError": ProviderUnavailable,
    "APIConnectionError": ProviderUnavailable,
    "TransportError": ProviderUnavailable,
    "UnprocessableEntityError": BadRequest,
    "BadRequestError": BadRequest,
}


# litellm raises this before sending anything when a model string names no provider
_NO_PROVIDER = "LLM Provider NOT provided"


def translate(
    exc: BaseException, req: Request, *, reading: bool = False
) -> PipelineError | ClientClosed:
    """The ``pipeline.errors`` exception for an exception raised by litellm.

    The original is never chained as it is: ``__cause__`` is a redacted stand-in
    (``pipeline.secrets.ForeignError``). Raise the result outside the ``except``
    block that caught ``exc``, or Python chains the original as ``__context__``.
    ``reading``: ``exc`` came while reading the answer, not while sending.
    """
    if isinstance(exc, PipelineError):  # already ours (a timeout of this stage)
        return exc
    error = request_fault(exc) or response_fault(exc, reading=reading) or _provider_error(exc, req)
    error.__cause__ = stand_in(exc, req.api_key)
    return error


def _provider_error(exc: BaseException, req: Request) -> PipelineError | ClientClosed:
    raw = _message(exc)
    if _CLOSED_CLIENT in raw.lower():
        message = redact(clean_message(raw), req.api_key)
        return ClientClosed(f"an HTTP client was used after it was closed (a bug): {message}")
    unreachable = _unreachable(exc, req)
    if unreachable is not None:
        return unreachable
    status = _status(exc)
    cls = _classify(exc, status)
    if cls is BadRequest and _NO_PROVIDER in raw:
        return InvalidRequest(
            "model",
            f"{req.model!r} names no provider litellm knows: write provider/model"
            " (e.g. openai/gpt-4o-mini), or give api_base for an OpenAI-compatible server",
        )
    message = redact(clean_message(raw) + body_note(exc, raw), req.api_key)
    lowered = message.lower()
    if cls is BadRequest and any(h in lowered for h in CONTEXT_HINTS):
        cls = ContextWindowExceeded
    elif any(h in lowered for h in _CREDENTIAL_HINTS):
        # litellm reports a missing key as a 500 before any request is sent.
        cls = AuthenticationFailed
    return cls(
        message,
        status_code=status,
        provider=getattr(exc, "llm_provider", None) or None,
        headers=response_headers(exc),
    )


def _classify(exc: BaseException, status: int | None) -> type[ProviderError]:
    for klass in type(exc).__mro__:
        found = _BY_CLASS.get(klass.__name__)
        if found is not None:
            return found
    if isinstance(exc, TimeoutError):
        return ProviderTimeout
    if isinstance(exc, ConnectionError | OSError):
        return ProviderUnavailable
    return status_error(status)


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _message(exc: BaseException) -> str:
    return str(getattr(exc, "message", "") or exc) or type(exc).__name__


# "litellm.InternalServerError: InternalServerError: OpenAIException - ", in any mix
_PREFIXES = re.compile(r"^(?:(?:litellm\.)?\w*(?:Error|Exception)(?::| -) *)+")
_HANDLE_WITH = re.compile(r"\.?\s*Handle with `litellm\.\w+`\.?\s*$")
_ERROR_CODE = re.compile(r"^Error code: \d+ - ", re.IGNORECASE)


def clean_message(text: str) -> str:
    """The provider's own words from a litellm message: class-name prefixes
    and litellm's advice removed, a JSON error body reduced to its message."""
    stripped = _HANDLE_WITH.sub("", _PREFIXES.sub("", text.strip(), count=1)).strip()
    stripped = _ERROR_CODE.sub("", stripped)
    return _body_message(stripped) or stripped or text.strip()


def _body_message(text: str) -> str | None:
    """``error.message`` (or ``message``) of a JSON, Python-dict or bytes-literal body."""
    if not text.startswith(("{", "b'", 'b"')):
        return None
    try:
        value: Any = ast.literal_eval(text) if text.startswith("b") else json.loads(text)
    except (ValueError, SyntaxError):
        try:
            value = ast.literal_eval(text)  # a Python dict repr ("{'error': ...}")
        except (ValueError, SyntaxError):
            return None
    if isinstance(value, bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, dict):
        return None
    error = value.get("error")
    for source in (error, value):
        if isinstance(source, dict) and isinstance(source.get("message"), str):
            return str(source["message"]).strip() or None
    return error if isinstance(error, str) and error.strip() else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes, outermost first (cycles and very long chains cut)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 16:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _unreachable(exc: BaseException, req: Request) -> ProviderUnreachable | None:
    """``ProviderUnreachable`` when the cause is a connection never made, else ``None``."""
    chain = list(_chain(exc))
    reason = None
    for cause in chain:
        if isinstance(cause, socket.gaierror):
            reason = "host not found" if cause.errno in NAME_UNKNOWN else "name lookup failed"
        elif isinstance(cause, OSError) and not isinstance(cause, TimeoutError):
            reason = UNREACHABLE.get(cause.errno or 0, reason)
    if reason is None:
        return None
    host, port = _where(chain, req)
    place = f"{host}:{port}" if host and port else host or "the provider"
    return ProviderUnreachable(
        f"cannot connect to {place} ({reason})",
        host=host,
        port=port,
        reason=reason,
        provider=getattr(exc, "llm_provider", None) or None,
    )


def _where(chain: list[BaseException], req: Request) -> tuple[str | None, int | None]:
    """Host and port of the failed connection: said by the innermost exception that
    knows (aiohttp's ``host``/``port``, an HTTP client's request URL), else the base."""
    for cause in reversed(chain):
        host, port = getattr(cause, "host", None), getattr(cause, "port", None)
        if isinstance(host, str) and host and isinstance(port, int):
            return host, port
    urls = [str(getattr(getattr(c, "request", None), "url", "") or "") for c in chain]
    for url in [req.api_base or "", *reversed(urls)]:
        host, port = _host_port(url)
        if host:
            return host, port
    return None, None


def _host_port(url: str) -> tuple[str | None, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None, None
    return parts.hostname, port


def response_headers(exc: BaseException) -> dict[str, str]:
    """The HTTP response headers behind an exception, lower-cased (for Retry-After)."""
    for source in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if isinstance(source, Mapping) or hasattr(source, "items"):
            items: Any = source.items()  # type: ignore[union-attr]
            return {str(k).lower(): str(v) for k, v in items}
    return {}
