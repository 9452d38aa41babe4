"""litellm's exceptions as ``pipeline.errors``: the only place they are translated.

Classification goes by litellm's exception class first and the HTTP status
second, so a provider litellm maps oddly (403 as a bare ``APIError``, 529
overloaded) still lands on the right branch. Messages are scrubbed of the
request's API key and of anything shaped like a key.

One failure is not the provider's at all: httpx's "the client has been
closed" means a pooled client was closed while still in use. litellm
reports it as a 500, which would be retried as transient and meet the same
closed client every time; it becomes ``ClientClosed``, an internal error
raised at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ClientClosed,
    ContentFiltered,
    ContextWindowExceeded,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    redact,
)
from pipeline.request import Request

__all__ = ["response_headers", "translate"]

_CONTEXT_HINTS = (
    "context length",
    "context_length_exceeded",
    "maximum context",
    "context window",
    "prompt is too long",
    "too many tokens",
)

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


def translate(exc: BaseException, req: Request) -> ProviderError | ClientClosed:
    """The ``pipeline.errors`` exception for an exception raised by litellm."""
    if isinstance(exc, ProviderError):  # already ours (a timeout of this stage)
        return exc
    message = redact(_message(exc), req.api_key)
    lowered = message.lower()
    if _CLOSED_CLIENT in lowered:
        return ClientClosed(f"an HTTP client was used after it was closed (a bug): {message}")
    status = _status(exc)
    cls = _classify(exc, status)
    if cls is BadRequest and any(h in lowered for h in _CONTEXT_HINTS):
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


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _message(exc: BaseException) -> str:
    text = str(getattr(exc, "message", "") or exc) or type(exc).__name__
    return text.removeprefix("litellm.")


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
