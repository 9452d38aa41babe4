"""litellm's responses as provider-neutral ``Chunk``s (pure conversions).

``to_chunk`` converts one streamed ``ModelResponseStream``;
``response_chunks`` plays a whole non-streamed ``ModelResponse`` back as the
chunks a stream of the same answer would have produced, so the stages after
dispatch cannot tell the difference.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pipeline.events import Chunk, ToolFragment

__all__ = ["provider_reported_usage", "response_chunks", "to_chunk", "usage_dict"]


def to_chunk(raw: Any) -> Chunk:
    """A litellm ``ModelResponseStream`` as a ``Chunk``."""
    text = reasoning = ""
    fragments: tuple[ToolFragment, ...] = ()
    finish: str | None = None
    choices = raw.choices
    if choices:
        choice = choices[0]
        delta = choice.delta
        if delta is not None:
            text = delta.content or ""
            reasoning = getattr(delta, "reasoning_content", None) or ""
            if delta.tool_calls:
                fragments = tuple(_fragment(tc, tc.index) for tc in delta.tool_calls)
        finish = choice.finish_reason
    usage = getattr(raw, "usage", None)
    return Chunk(
        text=text,
        reasoning=reasoning,
        tool_fragments=fragments,
        finish_reason=finish,
        usage=usage_dict(usage) if usage is not None else None,
        model=getattr(raw, "model", None) or "",
    )


def response_chunks(response: Any) -> list[Chunk]:
    """A non-streamed litellm ``ModelResponse`` as the chunks of a stream."""
    model = getattr(response, "model", None) or ""
    chunks: list[Chunk] = []
    finish = "stop"
    if response.choices:
        choice = response.choices[0]
        message = choice.message
        reasoning = getattr(message, "reasoning_content", None) or ""
        if reasoning:
            chunks.append(Chunk(reasoning=reasoning, model=model))
        if message.content:
            chunks.append(Chunk(text=message.content, model=model))
        calls = message.tool_calls or ()
        if calls:
            fragments = tuple(_fragment(tc, i) for i, tc in enumerate(calls))
            chunks.append(Chunk(tool_fragments=fragments, model=model))
        finish = choice.finish_reason or ("tool_calls" if calls else "stop")
    chunks.append(Chunk(finish_reason=finish, model=model))
    usage = getattr(response, "usage", None)
    if usage is not None:
        chunks.append(Chunk(usage=usage_dict(usage), model=model))
    return chunks


def _fragment(tc: Any, index: int | None) -> ToolFragment:
    fn = tc.function
    return ToolFragment(
        index=index,
        id=tc.id or None,
        name=(fn.name or None) if fn is not None else None,
        arguments=(fn.arguments or "") if fn is not None else "",
    )


def usage_dict(usage: Any) -> dict[str, Any]:
    """litellm's ``Usage`` object as a plain mapping (``None`` values left out)."""
    if isinstance(usage, Mapping):
        return dict(usage)
    dump = getattr(usage, "model_dump", None)
    data = dump() if dump is not None else vars(usage)
    return {k: v for k, v in data.items() if v is not None}


def provider_reported_usage(response: Any) -> bool:
    """Whether the provider itself reported usage, or litellm invented it.

    With no usage from the server litellm yields an estimate that looks real;
    the raw chunks it keeps (``response.chunks``) then carry no usage at all.
    """
    chunks = getattr(response, "chunks", None) or ()
    return any(getattr(c, "usage", None) is not None for c in chunks)
