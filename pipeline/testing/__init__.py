"""Test doubles shipped with the library: scripted and function-driven backends, a fake
clock, and a fake provider.

``scripted`` replaces the ``dispatch`` stage with one over a ``ScriptedBackend``
(a list of chunk scripts, one per attempt), so the rest of the pipeline, the
dispatch stage itself included, runs unchanged and offline::

    p = Pipeline.default().replace("dispatch", testing.scripted([["Hel", "lo"]]))

``FunctionBackend`` answers with a function of yours
(``Pipeline.default(backend=testing.FunctionBackend(fn))``); ``FakeClock``
makes waits instant; ``text_chunks`` / ``tool_chunks`` write scripts in one
line. ``FakeProvider`` is a real HTTP server on loopback speaking the OpenAI
and Anthropic streaming formats, for end-to-end tests through real LiteLLM;
its reply steps are ``Text``, ``Reasoning``, ``ToolDelta``, ``FinishStep``,
``UsageStep``, ``Stall``, ``Drop``, ``Done``, ``Raw`` and ``Wire``.
"""

from __future__ import annotations

from pipeline.testing.chunks import text_chunks, tool_chunks
from pipeline.testing.clock import FakeClock
from pipeline.testing.fakeprovider import (
    ConnectionRecord,
    Done,
    Drop,
    FakeProvider,
    FinishStep,
    Raw,
    Reasoning,
    RecordedRequest,
    Reply,
    Stall,
    Text,
    ToolDelta,
    UsageStep,
    Wire,
)
from pipeline.testing.function import FunctionBackend
from pipeline.testing.scripted import Script, ScriptedBackend, ScriptedDispatch, scripted

__all__ = [
    "ConnectionRecord",
    "Done",
    "Drop",
    "FakeClock",
    "FakeProvider",
    "FinishStep",
    "FunctionBackend",
    "Raw",
    "Reasoning",
    "RecordedRequest",
    "Reply",
    "Script",
    "ScriptedBackend",
    "ScriptedDispatch",
    "Stall",
    "Text",
    "ToolDelta",
    "UsageStep",
    "Wire",
    "scripted",
    "text_chunks",
    "tool_chunks",
]

#: names of reply steps before 0.3 (they shadowed ``pipeline.events.Finish``/``Usage``)
_RENAMED = {"Finish": "FinishStep", "Usage": "UsageStep"}


def __getattr__(name: str) -> object:
    new = _RENAMED.get(name)
    if new is None:
        raise AttributeError(f"module 'pipeline.testing' has no attribute {name!r}")
    import warnings

    warnings.warn(
        f"pipeline.testing.{name} is now pipeline.testing.{new}", DeprecationWarning, stacklevel=2
    )
    return globals()[new]
