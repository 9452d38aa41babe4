"""Replay: a backend that plays back the chunks of a failed-request dump.

``replay_dispatch(chunks)`` is the dispatch stage over it: every request gets
the recorded chunks, and the provider is never called. Put in place of
``dispatch``, the rest of the pipeline (reassemble, usage,
empty_check, retry) runs unchanged on what production received, so a
failure seen in production can be reproduced and debugged offline
(``llmpipe replay DUMP.json``). ``load_dump`` reads the files written by
``stages.dumps``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from pipeline.context import Context
from pipeline.errors import InvalidRequest
from pipeline.events import Chunk, Request
from stages.dispatch import Dispatch

__all__ = [
    "FORMAT",
    "BadDump",
    "Dump",
    "ReplayBackend",
    "load_dump",
    "read_dump",
    "replay_dispatch",
]

FORMAT = "llmpipe.failed-request/1"


class BadDump(ValueError):
    """The file is not a failed-request dump this version can read."""


@dataclass(frozen=True, slots=True)
class Dump:
    """A failed-request dump, decoded."""

    request: Request
    chunks: tuple[Chunk, ...]
    error_kind: str
    error: str
    attempt: int
    time: str = ""
    estimated_tokens: int | None = None


class ReplayBackend:
    """A backend that answers every request with the same recorded chunks."""

    name = "replay"

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = tuple(chunks)

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        return None


def replay_dispatch(chunks: Sequence[Chunk], *, name: str = "dispatch") -> Dispatch[ReplayBackend]:
    """A dispatch stage that plays ``chunks`` back for every ``Request``."""
    return Dispatch(ReplayBackend(chunks), name=name)


def load_dump(data: bytes | str) -> Dump:
    """Decode a dump's JSON; ``BadDump`` says what is wrong with it."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise BadDump(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise BadDump("not a failed-request dump (not a JSON object)")
    if raw.get("format") != FORMAT:
        raise BadDump(
            f"not a failed-request dump (format {raw.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        request = msgspec.convert({"type": "request", **_dict(raw.get("request"))}, Request)
        chunks = msgspec.convert(
            [{"type": "chunk", **_dict(c)} for c in _list(raw.get("chunks"))], list[Chunk]
        )
    except (msgspec.ValidationError, InvalidRequest) as exc:
        raise BadDump(f"the recorded request or chunks do not decode: {exc}") from None
    return Dump(
        request=request,
        chunks=tuple(chunks),
        error_kind=str(raw.get("error_kind", "")),
        error=str(raw.get("error", "")),
        attempt=int(raw.get("attempt") or 0),
        time=str(raw.get("time", "")),
        estimated_tokens=raw.get("estimated_tokens"),
    )


def read_dump(path: str | Path) -> Dump:
    """``load_dump`` of a file (``OSError`` when it cannot be read)."""
    return load_dump(Path(path).read_bytes())


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadDump(f"expected a JSON object, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise BadDump(f"expected a JSON list of chunks, got {type(value).__name__}")
    return value
