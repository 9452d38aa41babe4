"""A drop-in for the reference framework's ``LiteLLMProvider``, running on llmpipe.

Code written against the reference provider switches with one import::

    from pipeline.compat import LiteLLMProvider, Tool, TextDeltaEvent, FinishEvent

``complete`` / ``acomplete`` return an ``LLMResponse``; ``stream`` yields the
reference's event classes in its order and ends a failed call with a
``StreamErrorEvent`` instead of raising. Underneath, every call is a pipeline
run (profiles, retries, reassembly, telemetry). The event classes are the
framework's own when it is installed, else equivalent dataclasses
(``FRAMEWORK_CLASSES`` says which).

This package is an edge adapter: it may use the stages' pure functions
(``stages.normalize``, ``stages.toolcalls``), while the core never imports it.
Importing it does not import litellm.
"""

from __future__ import annotations

from pipeline.compat.events import (
    FRAMEWORK_CLASSES,
    FinishEvent,
    LLMResponse,
    ReasoningDeltaEvent,
    ReasoningStartEvent,
    StreamErrorEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEndEvent,
    Tool,
    ToolCallEvent,
    ToolResultEvent,
)
from pipeline.compat.helpers import (
    compute_retry_delay,
    parse_tool_call_arguments,
    tool_to_openai_format,
)
from pipeline.compat.provider import LiteLLMProvider

__all__ = [
    "FRAMEWORK_CLASSES",
    "FinishEvent",
    "LLMResponse",
    "LiteLLMProvider",
    "ReasoningDeltaEvent",
    "ReasoningStartEvent",
    "StreamErrorEvent",
    "StreamEvent",
    "TextDeltaEvent",
    "TextEndEvent",
    "Tool",
    "ToolCallEvent",
    "ToolResultEvent",
    "compute_retry_delay",
    "parse_tool_call_arguments",
    "tool_to_openai_format",
]
