"""The reference framework's data shapes, for when the framework is not installed.

Same names, fields, defaults, field order and ``type`` literals as the
framework's ``framework.llm.stream_events`` and ``framework.llm.provider``,
so code that builds, pattern-matches, compares, hashes or ``asdict``-s them
behaves the same. Import them from ``pipeline.compat`` (or
``pipeline.compat.events``), which uses the framework's own classes instead
when it can import them.

The stream events are frozen dataclasses whose every field has a default;
``LLMResponse`` and ``Tool`` are mutable, as in the framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "FinishEvent",
    "LLMResponse",
    "ReasoningDeltaEvent",
    "ReasoningStartEvent",
    "StreamErrorEvent",
    "StreamEvent",
    "TextDeltaEvent",
    "TextEndEvent",
    "Tool",
    "ToolCallEvent",
    "ToolResultEvent",
]


@dataclass(frozen=True)
class TextDeltaEvent:
    """A piece of answer text; ``snapshot`` is all the text so far."""

    type: Literal["text_delta"] = "text_delta"
    content: str = ""
    snapshot: str = ""


@dataclass(frozen=True)
class TextEndEvent:
    """The answer text is complete."""

    type: Literal["text_end"] = "text_end"
    full_text: str = ""


@dataclass(frozen=True)
class ToolCallEvent:
    """The model asks for a tool call, with its parsed arguments."""

    type: Literal["tool_call"] = "tool_call"
    tool_use_id: str = ""
    tool_name: str = ""
    tool_input: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolResultEvent:
    """A tool's result (produced by agent loops, never by the provider)."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str = ""
    content: str = ""
    is_error: bool = False


@dataclass(frozen=True)
class ReasoningStartEvent:
    """The model started reasoning (once per stream, before the first delta)."""

    type: Literal["reasoning_start"] = "reasoning_start"


@dataclass(frozen=True)
class ReasoningDeltaEvent:
    """A piece of the model's reasoning."""

    type: Literal["reasoning_delta"] = "reasoning_delta"
    content: str = ""


@dataclass(frozen=True)
class FinishEvent:
    """The model finished; the call's token usage."""

    type: Literal["finish"] = "finish"
    stop_reason: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    model: str = ""


@dataclass(frozen=True)
class StreamErrorEvent:
    """The call failed; ``recoverable`` says whether asking again can help."""

    type: Literal["error"] = "error"
    error: str = ""
    recoverable: bool = False


StreamEvent = (
    TextDeltaEvent
    | TextEndEvent
    | ToolCallEvent
    | ToolResultEvent
    | ReasoningStartEvent
    | ReasoningDeltaEvent
    | FinishEvent
    | StreamErrorEvent
)


@dataclass
class LLMResponse:
    """A whole answer, as ``complete`` / ``acomplete`` return it."""

    content: str
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = ""
    raw_response: Any = None


@dataclass
class Tool:
    """A tool the model may call; ``parameters`` is a JSON-schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=dict)
