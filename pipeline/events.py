"""The event vocabulary: frozen msgspec Structs in one tagged union.

Every stage consumes and produces ``Event`` values. They are frozen values
with an explicit ``type`` tag, so a stream can be recorded as JSON and replayed
(``encode`` / ``decode``). No event carries data that grows with the whole
answer on every delta: ``TextDelta`` holds its own piece only, and the full
text appears once, in ``TextEnd``.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from pipeline._struct import EventBase
from pipeline.request import Request

__all__ = [
    "Chunk",
    "Event",
    "EventBase",
    "FallingBack",
    "Finish",
    "ReasoningDelta",
    "Request",
    "Retrying",
    "TextDelta",
    "TextEnd",
    "ToolCall",
    "ToolFragment",
    "UsageSource",
    "decode",
    "encode",
]

#: where a ``Finish``'s token counts come from
UsageSource = Literal["provider", "estimated", "none"]


class ToolFragment(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One streamed piece of a tool call, exactly as the provider sent it.

    Which call it belongs to is decided later (``reassemble``): by ``id`` when
    present, else by ``index``, else the latest call.
    """

    index: int | None = None
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Chunk(EventBase, frozen=True, tag="chunk"):
    """One provider chunk, provider-neutral. Produced by dispatch only.

    ``usage`` is the provider's usage mapping in OpenAI shape
    (``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details`` or
    ``cache_read_input_tokens``); ``usage_estimated`` is set when the numbers
    were made up by the client library rather than reported by the provider.
    """

    text: str = ""
    reasoning: str = ""
    tool_fragments: tuple[ToolFragment, ...] = ()
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    usage_estimated: bool = False
    model: str = ""


class TextDelta(EventBase, frozen=True, tag="text_delta"):
    """A piece of answer text, sent on as soon as it arrives."""

    text: str


class ReasoningDelta(EventBase, frozen=True, tag="reasoning_delta"):
    """A piece of the model's reasoning (thinking), when the provider streams it."""

    text: str


class TextEnd(EventBase, frozen=True, tag="text_end"):
    """The whole answer text, once, after the last ``TextDelta``."""

    text: str


class ToolCall(EventBase, frozen=True, tag="tool_call"):
    """A complete tool call with parsed arguments.

    ``repaired`` is true when the streamed arguments were truncated JSON that
    had to be closed to parse: the call may be missing trailing arguments.
    """

    id: str
    name: str
    arguments: dict[str, Any]
    repaired: bool = False


class Retrying(EventBase, frozen=True, tag="retrying"):
    """The retry stage is about to wait ``delay_s`` and try again."""

    attempt: int
    delay_s: float
    reason: str


class FallingBack(EventBase, frozen=True, tag="falling_back"):
    """The call moves on from ``from_model`` to ``to_model`` (nothing was delivered yet).

    ``reason`` is why (``pipeline.fallbacks.FallbackReason``): the failure
    that made ``from_model`` give up, or ``cooling_down`` when it was skipped
    because it failed repeatedly in recent calls.
    """

    from_model: str
    to_model: str
    reason: str


class Finish(EventBase, frozen=True, tag="finish"):
    """The last event of a successful stream.

    ``model`` is the model that answered (after a fallback, the target's);
    ``cost_usd`` what the call cost by LiteLLM's price table
    (``pipeline.cost``), ``None`` when the model's price is unknown.
    """

    stop_reason: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    model: str = ""
    usage_source: UsageSource = "none"
    cost_usd: float | None = None


Event = (
    Request
    | Chunk
    | TextDelta
    | ReasoningDelta
    | TextEnd
    | ToolCall
    | Retrying
    | FallingBack
    | Finish
)

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)


def encode(event: Event) -> bytes:
    """JSON bytes of an event; a request's API keys (its fallbacks' too) are left out."""
    if isinstance(event, Request):
        event = event.without_secrets()
    return _encoder.encode(event)


def decode(data: bytes | str) -> Event:
    """The event encoded by ``encode``."""
    event: Event = _decoder.decode(data)
    return event
