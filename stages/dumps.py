"""Failed-request dumps: what was sent and what came back, for offline debugging.

A dump is one JSON file, one ``DumpFile``: the request (never the API key),
the error kind and message, the attempt, a token estimate, and the chunks
received. The writer (the retry segment) and the readers (``llmpipe
replay``, tests) share this one Struct and its encoder and decoder, so what
is written is what is read. Files are written off the event loop,
owner-only (0600 in a 0700 directory), and only the newest ``max_files``
are kept. Writing a dump never raises: when the disk is read-only, full or
forbidden, ``write_dump`` logs a warning and returns ``None`` (the
documented "no dump" sentinel).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

import msgspec

from pipeline.events import Chunk, Request
from pipeline.secrets import guard_logger

__all__ = [
    "DUMP_DIR_ENV",
    "FORMAT",
    "BadDump",
    "DumpFile",
    "decode_dump",
    "dump_dir",
    "encode_dump",
    "read_dump",
    "write_dump",
]

log = guard_logger("llmpipe.dumps")

DUMP_DIR_ENV = "LLMPIPE_DUMP_DIR"
FORMAT = "llmpipe.failed-request/1"


class DumpFile(msgspec.Struct, frozen=True, kw_only=True):
    """One failed-request dump, as written and as read (fields in file order)."""

    format: str = FORMAT
    time: str = ""  # UTC, ISO 8601
    model: str = ""
    error_kind: str = ""  # the retry cause: rate_limited, empty
    error: str = ""
    attempt: int = 0
    estimated_tokens: int | None = None
    token_method: str = ""
    request: Request  # never with its API key
    chunks: tuple[Chunk, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        request: Request,
        error_kind: str,
        error: str,
        attempt: int,
        tokens: tuple[int, str],
        chunks: Sequence[Chunk],
    ) -> DumpFile:
        """The dump of a failure now: the request without its key, the chunks received."""
        return cls(
            time=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            model=request.model,
            error_kind=error_kind,
            error=error,
            attempt=attempt,
            estimated_tokens=tokens[0],
            token_method=tokens[1],
            request=request.without_secrets(),
            chunks=tuple(chunks),
        )


class BadDump(ValueError):
    """The file is not a failed-request dump this version can read."""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DumpFile)


def encode_dump(dump: DumpFile) -> bytes:
    """The file's bytes: indented JSON, the API key never in it."""
    clean = dump.request.without_secrets()
    if clean is not dump.request:
        dump = msgspec.structs.replace(dump, request=clean)
    return msgspec.json.format(_encoder.encode(dump), indent=2)


def decode_dump(data: bytes | str) -> DumpFile:
    """A dump's ``DumpFile``; ``BadDump`` says what is wrong with it."""
    try:
        dump = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise BadDump(_why(data, exc)) from None
    except msgspec.DecodeError as exc:
        raise BadDump(f"not JSON ({exc})") from None
    if dump.format != FORMAT:
        raise BadDump(_wrong_format(dump.format))
    return dump


def read_dump(path: str | Path) -> DumpFile:
    """``decode_dump`` of a file (``OSError`` when it cannot be read)."""
    return decode_dump(Path(path).read_bytes())


def _why(data: bytes | str, exc: msgspec.ValidationError) -> str:
    """What is wrong with JSON that is not a valid dump: not one at all, or a bad field."""
    raw = msgspec.json.decode(data)
    if not isinstance(raw, dict):
        return "not a failed-request dump (not a JSON object)"
    if raw.get("format") != FORMAT:
        return _wrong_format(raw.get("format"))
    return f"the recorded request or chunks do not decode: {exc}"


def _wrong_format(found: object) -> str:
    return f"not a failed-request dump (format {found!r}, expected {FORMAT!r})"


def dump_dir(configured: str | Path | None) -> Path | None:
    """The dump directory: the policy's, else ``$LLMPIPE_DUMP_DIR``, else none."""
    if configured is not None:
        return Path(configured).expanduser()
    env = os.environ.get(DUMP_DIR_ENV)
    return Path(env).expanduser() if env else None


async def write_dump(directory: Path, dump: DumpFile, *, max_files: int) -> Path | None:
    """Write ``dump`` off the event loop; the file's path, or ``None`` if it failed."""
    return await asyncio.to_thread(_write, directory, dump, max_files)


def _write(directory: Path, dump: DumpFile, max_files: int) -> Path | None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = f"{stamp}_{dump.error_kind}_{uuid.uuid4().hex[:8]}.json"
    path = directory / name
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(encode_dump(dump))
    except OSError as exc:
        log.warning("could not write a failed-request dump in %s: %s", directory, exc)
        return None
    _prune(directory, max_files)
    return path


def _prune(directory: Path, keep: int) -> None:
    try:
        dumps = sorted(directory.glob("*.json"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        for old in dumps[: max(len(dumps) - keep, 0)]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not prune failed-request dumps in %s: %s", directory, exc)
