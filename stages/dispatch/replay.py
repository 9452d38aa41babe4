"""replay: a dispatch that plays back the chunks of a failed-request dump.

consumes: ``Request``
emits: the recorded ``Chunk``s, for every request (the provider is never called)
passes through: every other event
buffers: nothing

Put in place of ``dispatch``, the rest of the pipeline (reassemble, usage,
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
from pipeline.events import Chunk, Event, Request
from pipeline.runner import closing
from pipeline.stage import Stage, stage

__all__ = ["FORMAT", "BadDump", "Dump", "load_dump", "read_dump", "replay_dispatch"]

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


def replay_dispatch(chunks: Sequence[Chunk], *, name: str = "dispatch") -> Stage:
    """A dispatch stand-in that yields ``chunks`` for every ``Request``."""
    recorded = tuple(chunks)

    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                recording = ctx.attempt.recording if ctx.attempt is not None else None
                for n, chunk in enumerate(recorded):
                    if n == 0:
                        ctx.instrument.first_chunk(ctx)
                    if recording is not None:
                        recording.append(chunk)
                    yield chunk

    return stage(name, run)


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
