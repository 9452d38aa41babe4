"""The one exception tree of llmpipe::

    PipelineError                      a call failed; never a bug of ours
    ├── InvalidRequest                 (a ValueError) the caller's input; nothing was sent
    ├── ProviderError                  status_code, provider, headers
    │   ├── RateLimited                transient; headers carry Retry-After
    │   ├── ProviderTimeout            transient: no answer, or a stall
    │   ├── ProviderUnavailable        transient: connection errors, 5xx
    │   │   └── ProviderUnreachable    host, port, reason: no connection at all
    │   ├── BadRequest                 HTTP 400/422: what was sent was refused
    │   │   ├── ContextWindowExceeded
    │   │   └── ModelNotFound          HTTP 404
    │   ├── AuthenticationFailed       HTTP 401/403
    │   └── ContentFiltered
    ├── StreamError                    the answer itself is unusable
    │   ├── EmptyResponse              transient: no text, no tool call
    │   ├── MalformedResponse          not a stream, not UTF-8/JSON, broken framing
    │   ├── MalformedToolCall          tool_name, tool_call_id, raw_arguments
    │   └── StreamInterrupted          after content: partial_text, partial_tool_calls
    ├── RetriesExhausted               attempts, reason; also an instance of its cause's class
    ├── UsageLimitExceeded             limit, used, maximum: a budget reached; nothing sent
    └── TargetCoolingDown              model, seconds: skipped for a fallback; nothing sent

    RuntimeError
    ├── PipelineMisuse                 a programming error in how the pipeline is used
    │   └── StageNotFound              (a KeyError too)
    └── InternalError                  a bug in llmpipe or a library it drives
        └── ClientClosed               an HTTP client used after it was closed

Foreign exceptions (litellm, httpx, openai) are translated into these at the
dispatch boundary (a backend) and nowhere else, so callers only ever catch
``PipelineError`` and its branches. ``asyncio.CancelledError`` and
``GeneratorExit`` are never caught or translated. The tree stays one module
(about 400 lines), as httpx keeps its ``_exceptions.py``: it is read
as one thing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pipeline.secrets import redact

if TYPE_CHECKING:
    from pipeline.events import ToolCall

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "ClientClosed",
    "ContentFiltered",
    "ContextWindowExceeded",
    "EmptyResponse",
    "InternalError",
    "InvalidRequest",
    "MalformedResponse",
    "MalformedToolCall",
    "ModelNotFound",
    "PipelineError",
    "PipelineMisuse",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "ProviderUnreachable",
    "RateLimited",
    "RetriesExhausted",
    "StageNotFound",
    "StreamError",
    "StreamInterrupted",
    "TargetCoolingDown",
    "UsageLimitExceeded",
    "redact",
]


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
        self.problem = redact(problem)  # a problem may quote a value; never a key
        super().__init__(f"invalid request: {field}: {self.problem}")


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


class ProviderUnreachable(ProviderUnavailable):
    """No connection to the provider: refused, host name not found, network unreachable.

    Nothing was sent. ``host`` and ``port`` say where the call tried to go
    (``None`` when unknown) and ``reason`` why, in a few words
    (``"connection refused"``); the message is ``cannot connect to
    host:port (reason)``. Transient, like every connection failure: a server
    that is restarting answers again soon. A batch stops after a few in a
    row instead of trying every line (see ``pipeline.cli.batch.runner``).
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        reason: str = "",
        provider: str | None = None,
    ) -> None:
        super().__init__(message, provider=provider)
        self.host = host
        self.port = port
        self.reason = reason


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


class MalformedResponse(StreamError):
    """The provider's answer could not be read: not an event stream (an HTML page, a
    JSON document), not UTF-8, not JSON, fields of the wrong type, broken framing or
    compression. Asking again gets the same bytes, so it is not transient. The
    message names what arrived (content type, the first bytes, redacted)."""


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
    """Every allowed attempt failed; the last cause is chained as ``__cause__``.

    The retry stage raises ``RetriesExhausted.after(cause, ...)``, which is
    also an instance of the cause's class: after persistent 429s both
    ``except RateLimited`` and ``except RetriesExhausted`` catch it, and it
    carries the cause's attributes (``status_code``, ``headers``,
    ``provider``, ``transient``, ...) besides ``attempts`` and ``reason``.
    """

    #: the class of the failure behind this one (``None`` on a plain instance)
    cause_class: type[BaseException] | None = None

    def __init__(self, message: str, *, attempts: int, reason: str) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.reason = reason

    @classmethod
    def after(
        cls, cause: BaseException, message: str, *, attempts: int, reason: str
    ) -> RetriesExhausted:
        """The exhaustion of a budget spent on ``cause``, an instance of ``type(cause)`` too.

        The cause's class is never instantiated (its ``__init__`` may take
        anything): the new exception takes the cause's attributes instead.
        Chain it yourself: ``raise RetriesExhausted.after(exc, ...) from exc``.
        """
        state = {k: v for k, v in vars(cause).items() if k != "__notes__"}
        if "message" in state:  # ``str(exc) == exc.message``, as on every ProviderError
            state["message"] = message
        return _restore(type(cause), (message,), state, attempts, reason)

    def __reduce__(self) -> tuple[object, ...]:
        # The combined classes are made at run time; pickle rebuilds them from the cause's class.
        state = {k: v for k, v in vars(self).items() if k not in ("attempts", "reason")}
        return (_restore, (self.cause_class, self.args, state, self.attempts, self.reason))


def _restore(
    cause_class: type[BaseException] | None,
    args: tuple[object, ...],
    state: dict[str, object],
    attempts: int,
    reason: str,
) -> RetriesExhausted:
    klass = RetriesExhausted if cause_class is None else _exhausted_class(cause_class)
    exc = klass.__new__(klass, *args)
    Exception.__init__(exc, *args)
    vars(exc).update(state)
    exc.attempts, exc.reason = attempts, reason
    return exc


#: cause class -> its RetriesExhausted class; setdefault keeps one per cause across threads
_EXHAUSTED_CLASSES: dict[type[BaseException], type[RetriesExhausted]] = {}


def _exhausted_class(cause_class: type[BaseException]) -> type[RetriesExhausted]:
    """``RetriesExhausted`` and ``cause_class`` in one, made once per cause class."""
    known = _EXHAUSTED_CLASSES.get(cause_class)
    if known is None:
        known = _EXHAUSTED_CLASSES.setdefault(cause_class, _combined(cause_class))
    return known


def _combined(cause_class: type[BaseException]) -> type[RetriesExhausted]:
    if issubclass(cause_class, RetriesExhausted) or not issubclass(cause_class, Exception):
        return RetriesExhausted
    namespace = {
        "__module__": __name__,
        "__qualname__": "RetriesExhausted",  # what tracebacks, logs and batch output show
        "__doc__": f"``RetriesExhausted`` after ``{cause_class.__qualname__}`` failures.",
        "cause_class": cause_class,
    }
    try:
        return type("RetriesExhausted", (RetriesExhausted, cause_class), namespace)
    except TypeError:  # a cause class that cannot be combined (an incompatible layout)
        return RetriesExhausted


# --- budgets and cool-downs: refusals before sending -------------------------------


class UsageLimitExceeded(PipelineError):
    """A usage limit (``pipeline.limits.UsageLimits``) was reached; nothing was sent.

    Raised before a request would go out, never in the middle of a stream:
    ``limit`` names it (``"requests"``, ``"input_tokens"``, ``"output_tokens"``,
    ``"total_tokens"``, ``"cost_usd"``), ``used`` is what was used so far and
    ``maximum`` the limit. Not retried and no fallback is tried.
    """

    def __init__(self, message: str, *, limit: str, used: float, maximum: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.used = used
        self.maximum = maximum


class TargetCoolingDown(PipelineError):
    """A fallback target is cooling down (it failed repeatedly), so it was skipped.

    The fallback segment raises and handles it itself (the call moves on to
    its next target), so callers do not see it. ``model`` is the target's
    model, ``seconds`` how long its cool-down has left.
    """

    def __init__(self, message: str, *, model: str, seconds: float) -> None:
        super().__init__(message)
        self.model = model
        self.seconds = seconds


# --- misuse and internal faults ---------------------------------------------------


class PipelineMisuse(RuntimeError):
    """A programming error in how the pipeline is used (not a call failure)."""


class StageNotFound(PipelineMisuse, KeyError):
    """No stage by that name in the pipeline."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class InternalError(RuntimeError):
    """A fault inside llmpipe or a library it drives: a bug, not a call failure.

    Neither the provider nor the caller did anything wrong, so it is not a
    ``PipelineError``: it is never retried, never turned into a
    ``StreamInterrupted``, and the CLI exits 70 with it. Please report it.
    """


class ClientClosed(InternalError):
    """An HTTP client was used after it had been closed.

    Retrying would only meet the same closed client again, so this is raised
    at once. It means a pooled client was released while still in use.
    """
