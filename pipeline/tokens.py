"""Cheap token estimates, for when the provider reports no usage.

Characters / 4 is the usual rule of thumb for English text with BPE
tokenizers; it counts everything that is sent: content, tool-call names,
arguments and ids, and tool schemas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgspec

from pipeline.request import Request

__all__ = ["TokenCounter", "estimate_message_tokens", "estimate_request_tokens", "estimate_tokens"]

#: ``(token count, method)`` for a request; method names how it was counted
TokenCounter = Callable[[Request], Awaitable[tuple[int, str]]]


def estimate_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    return _chars_of_messages(messages) // 4


def estimate_request_tokens(req: Request) -> int:
    chars = _chars_of_messages(req.messages) + len(req.system or "")
    for tool in req.tools or ():
        chars += len(tool.name) + len(tool.description) + len(msgspec.json.encode(tool.parameters))
    return chars // 4


def _chars_of_messages(messages: Iterable[Mapping[str, Any]]) -> int:
    chars = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                    chars += len(part["text"])
        chars += len(m.get("tool_call_id") or "")
        for call in m.get("tool_calls") or ():
            chars += len(call.get("id") or "")
            fn = call.get("function") or {}
            chars += len(fn.get("name") or "") + len(fn.get("arguments") or "")
    return chars


async def estimate_tokens(req: Request) -> tuple[int, str]:
    """The default ``TokenCounter``: characters / 4, no tokenizer needed."""
    return estimate_request_tokens(req), "estimate"
