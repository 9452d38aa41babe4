"""A loopback, scripted fake LLM provider that speaks real HTTP/1.1.

Why a real server instead of mocking LiteLLM or httpx: the faults that matter in production
(a stream that stalls, a dropped TCP connection, a malformed SSE event, a 429 with
``retry-after``, a client hanging up mid-stream) only behave realistically when every layer
(LiteLLM, the provider SDK, httpx, sockets) is exercised. The server runs on 127.0.0.1 on
its *own* thread and event loop, so it keeps serving while a sync caller blocks its thread,
and one instance can serve async tests running in any other loop.

Each request takes the next scripted :class:`Reply` (FIFO), else the responder, else the
default reply, else an HTTP 500. A reply is a sequence of steps rendered as an OpenAI
chat-completions stream/object (``/v1/chat/completions``) or an Anthropic messages
stream/object (``/v1/messages``). Every request and connection is recorded for assertions.
"""

from pipeline.testing.fakeprovider.script import (
    ConnectionRecord,
    Done,
    Drop,
    ErrorDetail,
    FinishStep,
    Raw,
    Reasoning,
    RecordedRequest,
    Reply,
    Stall,
    Step,
    Text,
    ToolDelta,
    UsageStep,
    Wire,
)
from pipeline.testing.fakeprovider.server import FakeProvider

__all__ = [
    "ConnectionRecord",
    "Done",
    "Drop",
    "ErrorDetail",
    "FakeProvider",
    "FinishStep",
    "Raw",
    "Reasoning",
    "RecordedRequest",
    "Reply",
    "Stall",
    "Step",
    "Text",
    "ToolDelta",
    "UsageStep",
    "Wire",
]
