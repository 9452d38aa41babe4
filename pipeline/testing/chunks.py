"""Chunk scripts in one line: ``text_chunks("Hel", "lo")``, ``tool_chunks(("c1", "f", "{}"))``."""

from __future__ import annotations

from typing import Any

from pipeline.events import Chunk, ToolFragment

__all__ = ["text_chunks", "tool_chunks"]


def text_chunks(
    *parts: str,
    finish: str | None = "stop",
    usage: tuple[int, int] | None = (10, 5),
    model: str = "",
) -> list[Chunk]:
    """Text chunks, a finish chunk, and a trailing usage-only chunk."""
    chunks = [Chunk(text=p, model=model) for p in parts]
    if finish is not None:
        chunks.append(Chunk(finish_reason=finish, model=model))
    if usage is not None:
        chunks.append(Chunk(usage=_usage(*usage), model=model))
    return chunks


def tool_chunks(
    *calls: tuple[str, str, str],
    finish: str = "tool_calls",
    usage: tuple[int, int] | None = (10, 5),
) -> list[Chunk]:
    """One chunk per ``(id, name, raw_arguments)`` call, at indices 0, 1, ..."""
    chunks = [
        Chunk(tool_fragments=(ToolFragment(index=i, id=cid, name=name, arguments=args),))
        for i, (cid, name, args) in enumerate(calls)
    ]
    chunks.append(Chunk(finish_reason=finish))
    if usage is not None:
        chunks.append(Chunk(usage=_usage(*usage)))
    return chunks


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
