"""Failed-request dumps: what was sent and what came back, for offline debugging.

A dump is one JSON file: the request (never the API key), the error kind and
message, the attempt, a token estimate, and the chunks received. Files are
written off the event loop, owner-only (0600 in a 0700 directory), and only
the newest ``max_files`` are kept. Writing a dump never raises: when the disk
is read-only, full or forbidden, ``write_dump`` logs a warning and returns
``None`` (the documented "no dump" sentinel).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from pipeline.events import Chunk, Request
from pipeline.secrets import guard_logger

__all__ = ["DUMP_DIR_ENV", "dump_dir", "dump_payload", "write_dump"]

log = guard_logger("llmpipe.dumps")

DUMP_DIR_ENV = "LLMPIPE_DUMP_DIR"
FORMAT = "llmpipe.failed-request/1"


def dump_dir(configured: str | Path | None) -> Path | None:
    """The dump directory: the policy's, else ``$LLMPIPE_DUMP_DIR``, else none."""
    if configured is not None:
        return Path(configured).expanduser()
    env = os.environ.get(DUMP_DIR_ENV)
    return Path(env).expanduser() if env else None


def dump_payload(
    *,
    request: Request,
    error_kind: str,
    error: str,
    attempt: int,
    tokens: tuple[int, str],
    chunks: Sequence[Chunk],
) -> dict[str, Any]:
    """The JSON-ready content of a dump (the API key left out)."""
    safe = msgspec.structs.replace(request, api_key=None)
    return {
        "format": FORMAT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": request.model,
        "error_kind": error_kind,
        "error": error,
        "attempt": attempt,
        "estimated_tokens": tokens[0],
        "token_method": tokens[1],
        "request": msgspec.to_builtins(safe),
        "chunks": msgspec.to_builtins(list(chunks)),
    }


async def write_dump(directory: Path, payload: dict[str, Any], *, max_files: int) -> Path | None:
    """Write ``payload`` off the event loop; the file's path, or ``None`` if it failed."""
    return await asyncio.to_thread(_write, directory, payload, max_files)


def _write(directory: Path, payload: dict[str, Any], max_files: int) -> Path | None:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    name = f"{stamp}_{payload['error_kind']}_{uuid.uuid4().hex[:8]}.json"
    path = directory / name
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(msgspec.json.format(msgspec.json.encode(payload), indent=2))
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
