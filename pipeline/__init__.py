"""llmpipe: LLM calls through LiteLLM as a pipeline of small asyncio stages.

``import pipeline`` is cheap: litellm is imported only when a litellm
dispatch first runs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from pipeline import errors, events
from pipeline.context import Context
from pipeline.events import (
    Chunk,
    Event,
    Finish,
    ReasoningDelta,
    Retrying,
    TextDelta,
    TextEnd,
    ToolCall,
    ToolFragment,
)
from pipeline.eventstream import EventStream, collect
from pipeline.pipeline import Pipeline
from pipeline.request import Message, Request, ToolSpec
from pipeline.response import Response, Usage, tool_result
from pipeline.stage import Segment, Stage, stage

__all__ = [
    "Chunk",
    "Context",
    "Event",
    "EventStream",
    "Finish",
    "Message",
    "Pipeline",
    "ReasoningDelta",
    "Request",
    "Response",
    "Retrying",
    "Segment",
    "Stage",
    "TextDelta",
    "TextEnd",
    "ToolCall",
    "ToolFragment",
    "ToolSpec",
    "Usage",
    "acomplete",
    "collect",
    "complete",
    "default",
    "errors",
    "events",
    "stage",
    "stream",
    "tool_result",
]

__version__ = "0.1.0"


@functools.cache
def default() -> Pipeline:
    """The process-wide default pipeline behind ``pipeline.stream`` and friends."""
    return Pipeline.default()


def stream(request: Request | Mapping[str, Any]) -> EventStream:
    """``Pipeline.default().stream(request)``, on the shared default pipeline."""
    return default().stream(request)


async def acomplete(request: Request | Mapping[str, Any]) -> Response:
    return await default().acomplete(request)


def complete(request: Request | Mapping[str, Any]) -> Response:
    return default().complete(request)


def __getattr__(name: str) -> Any:
    # ``pipeline.testing`` without an explicit import, as in the docs.
    if name == "testing":
        import importlib

        return importlib.import_module("pipeline.testing")
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
