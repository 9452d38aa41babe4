"""The fake provider's script: the steps of a reply, and what it records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

import msgspec

Api: TypeAlias = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class Text:
    """A content delta."""

    text: str


@dataclass(frozen=True)
class Reasoning:
    """OpenAI ``delta.reasoning_content``; Anthropic a ``thinking`` block."""

    text: str


@dataclass(frozen=True)
class ToolDelta:
    """One tool-call fragment, sent exactly as given so any index/id pattern can be tested."""

    index: int | None = 0
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(frozen=True)
class UsageStep:
    """Token usage; as a step (OpenAI) a usage-only chunk with ``"choices": []``."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_read_input_tokens: int | None = None


@dataclass(frozen=True)
class FinishStep:
    """A chunk carrying ``finish_reason`` (and ``usage`` on the same chunk if given)."""

    reason: str = "stop"
    usage: UsageStep | None = None


@dataclass(frozen=True)
class Stall:
    """Send nothing for ``seconds`` (None: until the client closes), watching for EOF."""

    seconds: float | None = None


@dataclass(frozen=True)
class Drop:
    """Abort the TCP connection at once: no terminating chunk, no ``[DONE]``."""


@dataclass(frozen=True)
class Done:
    """The stream terminator: ``data: [DONE]`` (OpenAI) or ``message_stop`` (Anthropic)."""


@dataclass(frozen=True)
class Raw:
    """Bytes written as-is as one body chunk, for malformed streams."""

    data: bytes


@dataclass(frozen=True)
class Wire:
    """Bytes written to the socket outside the body's framing: with chunked transfer
    encoding this breaks the framing itself (the client may wait for a chunk that
    never ends), as a broken proxy does."""

    data: bytes


Step: TypeAlias = (
    Text | Reasoning | ToolDelta | FinishStep | UsageStep | Stall | Drop | Done | Raw | Wire
)

_USAGE = UsageStep(10, 5)
_NO_USAGE = UsageStep(10, 0)
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ErrorDetail:
    """An API error, rendered at send time in the shape of the API the request used."""

    message: str
    type: str = "error"
    code: str | None = None


def _tail(finish: str | None, usage: UsageStep | None, after: bool) -> tuple[Step, ...]:
    if finish is None:
        return () if usage is None else (usage,)
    if usage is None or after:
        return (FinishStep(finish),) + (() if usage is None else (usage,))
    return (FinishStep(finish, usage),)


@dataclass(frozen=True)
class Reply:
    """What the server does for one request. ``body`` (or ``error_detail``) wins over steps."""

    steps: tuple[Step, ...] = ()
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    error_detail: ErrorDetail | None = None
    #: append the format's end of stream (``[DONE]``, ``message_stop``) when the steps
    #: have no ``Done`` or ``Drop``; ``False`` sends exactly the steps
    auto_end: bool = True
    #: how a streamed body is framed: ``chunked`` transfer encoding, or ``close``
    #: (no length, the body ends when the server closes the connection)
    framing: Literal["chunked", "close"] = "chunked"

    @classmethod
    def text(
        cls,
        *parts: str,
        finish: str | None = "stop",
        usage: UsageStep | None = _USAGE,
        usage_after_finish: bool = True,
    ) -> Reply:
        """A text reply; usage as a separate chunk after finish, as OpenAI's include_usage."""
        return cls(tuple(Text(p) for p in parts) + _tail(finish, usage, usage_after_finish))

    @classmethod
    def tool_calls(
        cls,
        *calls: tuple[str, str, Mapping[str, Any] | str],
        finish: str | None = "tool_calls",
        usage: UsageStep | None = _USAGE,
    ) -> Reply:
        """(id, name, arguments) per call at index 0, 1, ..; arguments split in 2 fragments."""
        steps: list[Step] = []
        for i, (call_id, name, args) in enumerate(calls):
            text = args if isinstance(args, str) else msgspec.json.encode(args).decode()
            half = len(text) // 2
            steps += [ToolDelta(i, call_id, name, text[:half]), ToolDelta(i, arguments=text[half:])]
        return cls(tuple(steps) + _tail(finish, usage, True))

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "error",
        *,
        headers: Mapping[str, str] = _NO_HEADERS,
        type: str = "error",
        code: str | None = None,
    ) -> Reply:
        """An HTTP error with an OpenAI- or Anthropic-shaped body, chosen from the path."""
        return cls(status=status, headers=headers, error_detail=ErrorDetail(message, type, code))

    @classmethod
    def raw(
        cls,
        *pieces: bytes,
        status: int = 200,
        content_type: str = "text/event-stream",
        headers: Mapping[str, str] = _NO_HEADERS,
        framing: Literal["chunked", "close"] = "chunked",
    ) -> Reply:
        """Exactly these body bytes, one write per piece, as the answer to a streamed
        request (no end of stream added): for malformed and hostile output."""
        return cls(
            tuple(Raw(p) for p in pieces),
            status=status,
            headers={"content-type": content_type, **headers},
            auto_end=False,
            framing=framing,
        )

    @classmethod
    def empty(cls, finish: str = "stop", usage: UsageStep | None = _NO_USAGE) -> Reply:
        """A stream without content: only the finish (and usage)."""
        return cls(_tail(finish, usage, True))


@dataclass(frozen=True)
class RecordedRequest:
    """One received request; ``headers`` keys are lower-case, ``body`` is parsed JSON."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes
    received_at: float
    connection_id: int
    index: int


@dataclass
class ConnectionRecord:
    """One TCP connection; callers always get copies, the server mutates its own."""

    id: int
    opened_at: float
    closed_at: float | None = None
    closed_by: Literal["client", "server"] | None = None
    requests: int = 0
