"""The event and data classes the compat provider produces: the framework's own if importable.

When the reference framework is installed (``framework.llm.stream_events``
and ``framework.llm.provider`` import), these names *are* its classes, so its
agent loop's ``isinstance`` checks and ``match`` statements see exactly the
objects they expect. Otherwise they are the equivalent dataclasses of
``pipeline.compat.shapes``. It is all or nothing: a partial or older
framework (one missing a class) gets the shipped shapes throughout.

Importing the framework's classes imports its ``framework.llm`` package
(which may import litellm); that happens only where the framework is
installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pipeline.compat.shapes import (
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

__all__ = [
    "FRAMEWORK_CLASSES",
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

#: from ``framework.llm.provider``; the other names from ``framework.llm.stream_events``
_PROVIDER_NAMES = ("LLMResponse", "Tool")
_EVENT_NAMES = tuple(n for n in __all__ if n not in (*_PROVIDER_NAMES, "FRAMEWORK_CLASSES"))


def _framework_classes() -> dict[str, Any] | None:
    """The framework's classes by name, or ``None`` when it (or one of them) is missing."""
    try:
        events = importlib.import_module("framework.llm.stream_events")
        provider = importlib.import_module("framework.llm.provider")
        found = {n: getattr(events, n) for n in _EVENT_NAMES}
        found.update({n: getattr(provider, n) for n in _PROVIDER_NAMES})
    except (ImportError, AttributeError):
        return None
    return found


_found = _framework_classes()

#: whether the names here are the framework's own classes
FRAMEWORK_CLASSES = _found is not None

if _found is not None and not TYPE_CHECKING:
    globals().update(_found)  # the framework's classes replace the shipped shapes
