"""The one exception tree of llmpipe.

Foreign exceptions (litellm, httpx, openai) are translated into these at the
dispatch boundary and nowhere else, so callers only ever catch
``PipelineError`` and its branches. ``asyncio.CancelledError`` and
``GeneratorExit`` are never caught or translated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipeline.events import ToolCall

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "ContentFiltered",
    "ContextWindowExceeded",
    "EmptyResponse",
    "InvalidRequest",
    "MalformedToolCall",
    "ModelNotFound",
    "PipelineError",
    "PipelineMisuse",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "RetriesExhausted",
    "StageNotFound",
    "StreamError",
    "StreamInterrupted",
    "redact",
]

_KEYLIKE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-*]{6,}")


def redact(text: str, api_key: str | None = None) -> str:
    """``text`` with the API key, and anything shaped like an ``sk-`` key, masked.

    For every message that may quote a provider's words: error messages, log
    lines, span attributes.
    """
    if api_key and len(api_key) >= 4:
        text = text.replace(api_key, "***")
    return _KEYLIKE.sub(r"\1***", text)


class PipelineError(Exception):
    """Root of every error llmpipe raises on purpose (misuse aside).

    Every one pickles (a batch worker on another process or machine returns
    it as that id's result): it is rebuilt with its attributes and its
    ``__cause__`` when that is one of these errors too, without calling
    ``__init__`` again (whose keyword arguments ``pickle`` would not pass).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        cause = self.__cause__ if isinstance(self.__cause__, PipelineError) else None
        return (_rebuild, (type(self), self.args, dict(self.__dict__), cause))


def _rebuild(
    cls: type[PipelineError], args: tuple[Any, ...], state: dict[str, Any], cause: Any
) -> PipelineError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    exc.__cause__ = cause
    return exc


class InvalidRequest(PipelineError, ValueError):
    """The caller's request is malformed; nothing was sent.

    ``field`` names the offending field (``messages[2].role``, ``max_tokens``).
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"invalid request: {field}: {problem}")


# --- provider branch ------------------------------------------------------


class ProviderError(PipelineError):
    """The provider (or the road to it) failed the call.

    ``status_code`` is the HTTP status when there was one; ``provider`` is
    litellm's provider name when known. Messages never contain API keys.
    """

    #: whether trying the same request again can sensibly succeed
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        provider: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.provider = provider
        self.headers: Mapping[str, str] = dict(headers or {})


class RateLimited(ProviderError):
    """HTTP 429 (or the provider's equivalent); ``headers`` carry Retry-After."""

    transient = True


class ProviderTimeout(ProviderError):
    """No answer, or no next chunk, within the time allowed."""

    transient = True


class ProviderUnavailable(ProviderError):
    """Connection failures and 5xx answers: the server may do better soon."""

    transient = True


class BadRequest(ProviderError):
    """The provider rejected the request as malformed (HTTP 400/422)."""


class ContextWindowExceeded(BadRequest):
    """The prompt does not fit the model's context window."""


class ModelNotFound(BadRequest):
    """The model (or the endpoint) does not exist (HTTP 404)."""


class AuthenticationFailed(ProviderError):
    """Missing, wrong or unauthorised credentials (HTTP 401/403)."""


class ContentFiltered(ProviderError):
    """The provider's content policy refused the request or the answer."""


# --- stream branch ----------------------------------------------------------


class StreamError(PipelineError):
    """The provider answered, but the answer itself is unusable."""

    transient: bool = False


class EmptyResponse(StreamError):
    """The stream ended without text or tool calls (and not for ``length``)."""

    transient = True


class MalformedToolCall(StreamError):
    """A tool call's arguments are not a JSON object and could not be repaired."""

    def __init__(self, message: str, *, tool_name: str, tool_call_id: str, raw_arguments: str):
        super().__init__(message)
        self.tool_name = tool_name
        self.tool_call_id = tool_call_id
        self.raw_arguments = raw_arguments


class StreamInterrupted(StreamError):
    """The stream failed after content already reached the consumer.

    Retrying inside the pipeline would deliver that content twice, so the
    pipeline stops here and hands over what was delivered. ``transient`` says
    whether the cause was transient, i.e. whether the caller may sensibly ask
    again (for example with the partial answer as context).
    """

    def __init__(
        self,
        message: str,
        *,
        partial_text: str,
        partial_tool_calls: Sequence[ToolCall] = (),
        transient: bool,
    ) -> None:
        super().__init__(message)
        self.partial_text = partial_text
        self.partial_tool_calls = tuple(partial_tool_calls)
        self.transient = transient


# --- retries ------------------------------------------------------------------


class RetriesExhausted(PipelineError):
    """Every allowed attempt failed; the last cause is chained as ``__cause__``."""

    def __init__(self, message: str, *, attempts: int, reason: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.reason = reason


# --- misuse ---------------------------------------------------------------------


class PipelineMisuse(RuntimeError):
    """A programming error in how the pipeline is used (not a call failure)."""


class StageNotFound(PipelineMisuse, KeyError):
    """No stage by that name in the pipeline."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
