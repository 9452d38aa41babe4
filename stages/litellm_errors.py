"""litellm's exceptions as ``pipeline.errors``: the only place they are translated.

Classification goes by litellm's exception class first and the HTTP status
second, so a provider litellm maps oddly (403 as a bare ``APIError``, 529
overloaded) still lands on the right branch. Messages are scrubbed of the
request's API key and of anything shaped like a key. Requests that could not be
built and answers that could not be read are told apart first
(``stages.provider_faults``): litellm reports both as if the provider had failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContentFiltered,
    ContextWindowExceeded,
    ModelNotFound,
    PipelineError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    redact,
)
from pipeline.request import Request
from pipeline.secrets import stand_in
from stages.provider_faults import body_note, request_fault, response_fault

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


def translate(exc: BaseException, req: Request, *, reading: bool = False) -> PipelineError:
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


def _provider_error(exc: BaseException, req: Request) -> ProviderError:
    status = _status(exc)
    cls = _classify(exc, status)
    text = _message(exc)
    message = redact(text + body_note(exc, text), req.api_key)
    lowered = message.lower()
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
