"""The reference provider's helpers, as thin views of what the pipeline does.

Each helper answers exactly as the pipeline behaves when it makes the call,
because it *is* the pipeline's function: the retry delay is
``pipeline.policy.retry_delay``, the tool format is what ``normalize`` sends,
argument parsing is ``reassemble``'s repair. Only the reference's calling
conventions (an exception instead of headers, ``ValueError`` instead of
``MalformedToolCall``) are adapted here.

Also here: how a failure reads in a ``StreamErrorEvent`` (its text, and
whether it is ``recoverable``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from pipeline.errors import (
    MalformedToolCall,
    PipelineError,
    ProviderError,
    RetriesExhausted,
    StreamInterrupted,
    redact,
)
from pipeline.policy import RetryPolicy, retry_delay
from pipeline.request import ToolSpec
from stages.normalize import normalize_tool
from stages.toolcalls import parse_arguments

__all__ = [
    "ToolLike",
    "as_tool_spec",
    "compute_retry_delay",
    "error_text",
    "is_recoverable",
    "parse_tool_call_arguments",
    "tool_to_openai_format",
]

log = logging.getLogger("llmpipe.compat")

_POLICY = RetryPolicy()


class ToolLike(Protocol):
    """The reference's ``Tool``, or anything shaped like it."""

    name: str
    description: str
    parameters: dict[str, Any]


def compute_retry_delay(
    attempt: int,
    exception: BaseException | None = None,
    backoff_base: float = _POLICY.backoff_base_s,
    max_delay: float = _POLICY.max_delay_s,
) -> float:
    """Seconds before retry ``attempt + 1``: the server's Retry-After, else backoff.

    The headers are read from ``exception.headers`` (a ``pipeline.errors``
    provider error) or ``exception.response.headers`` (an HTTP library's
    exception; a plain dict works). Without jitter, as the reference computed it.
    """
    return retry_delay(attempt, _headers_of(exception), base=backoff_base, max_delay=max_delay)


def _headers_of(exc: BaseException | None) -> Mapping[str, str] | None:
    if exc is None:
        return None
    if isinstance(exc, ProviderError):
        return exc.headers
    headers = getattr(getattr(exc, "response", None), "headers", None)
    items = getattr(headers, "items", None)
    if items is None:
        return None
    try:
        return {str(k): str(v) for k, v in items()}
    except Exception:  # a mock or an odd object: no headers, back off instead
        return None


def parse_tool_call_arguments(raw_arguments: str, tool_name: str) -> dict[str, Any]:
    """A tool call's JSON arguments; truncated JSON is closed when that yields an object.

    Raises ``ValueError`` ("Failed to parse tool call arguments ...") when
    the text is neither an object nor repairable into one.
    """
    try:
        arguments, repaired = parse_arguments(raw_arguments, tool_name=tool_name)
    except MalformedToolCall as exc:
        raise ValueError(_malformed_text(tool_name)) from exc
    if repaired:
        log.warning("repaired truncated arguments of tool call %r", tool_name)
    return arguments


def tool_to_openai_format(tool: ToolLike | ToolSpec) -> dict[str, Any]:
    """The OpenAI function-tool dict the pipeline sends for ``tool``."""
    return normalize_tool(_spec(tool)).to_openai()


def as_tool_spec(tool: ToolLike | ToolSpec | Mapping[str, Any]) -> ToolSpec | Mapping[str, Any]:
    """A ``ToolSpec`` for a reference ``Tool``; OpenAI-format dicts pass unchanged
    (``Request`` validates them)."""
    return tool if isinstance(tool, Mapping) else _spec(tool)


def _spec(tool: ToolLike | ToolSpec) -> ToolSpec:
    if isinstance(tool, ToolSpec):
        return tool
    return ToolSpec(
        name=tool.name,
        description=tool.description or "",
        parameters=dict(tool.parameters or {}),
    )


# --- failures as the reference's StreamErrorEvent --------------------------------------


def is_recoverable(exc: BaseException) -> bool:
    """Whether asking again can sensibly succeed: a transient cause, or an
    interruption whose cause was transient."""
    if isinstance(exc, StreamInterrupted):
        return exc.transient
    cause = _cause(exc)
    if isinstance(cause, PipelineError):
        return bool(getattr(cause, "transient", False))
    return isinstance(cause, ConnectionError | TimeoutError)


def error_text(exc: BaseException, api_key: str | None = None) -> str:
    """What a ``StreamErrorEvent`` says: the error's class and message, key masked.

    A tool call that could not be parsed reads as the reference's
    "Failed to parse tool call arguments ...", which agent loops look for.
    """
    malformed = _in_chain(exc, MalformedToolCall)
    if malformed is not None:
        return _malformed_text(malformed.tool_name)
    return redact(f"{type(exc).__name__}: {exc}", api_key)


def _malformed_text(tool_name: str) -> str:
    return (
        f"Failed to parse tool call arguments for {tool_name!r}: not a JSON object,"
        " even after closing truncated JSON"
    )


def _cause(exc: BaseException) -> BaseException:
    """The failure behind ``RetriesExhausted`` (chained as ``__cause__``), else ``exc``."""
    if isinstance(exc, RetriesExhausted) and exc.__cause__ is not None:
        return exc.__cause__
    return exc


def _in_chain(exc: BaseException, kind: type[MalformedToolCall]) -> MalformedToolCall | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None
