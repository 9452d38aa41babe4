"""The output of ``llmpipe batch``: a journal of whole lines, SIGKILL-safe.

Each result is one ``os.write`` of one line to a file opened with
``O_APPEND``, so a killed process (even by SIGKILL) leaves only whole lines,
and the kernel has them as soon as the write returns. ``fsync`` runs at most
once a second and at the end, so a power cut costs at most the last second
of results, which a re-run redoes. When an id has several lines (a failure,
then its retry), the last one counts; ``compact`` rewrites the file (temp
file + rename) to one line per id. One batch writes a file at a time (a
lock).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from pipeline.cli.batch.input import Key, id_key
from pipeline.limits import UsageTotals

__all__ = ["Journal", "JournalWriter", "Loaded"]


@dataclass(slots=True)
class Loaded:
    """What an existing output file says: the last outcome per id."""

    ok: set[Key] = field(default_factory=set)
    failed: set[Key] = field(default_factory=set)
    lines: int = 0
    superseded: int = 0
    unreadable: int = 0
    truncated: int = 0
    #: what the lines read say was spent (requests, tokens, cost): a resumed batch's limits
    #: count it
    spent: UsageTotals = field(default_factory=UsageTotals)


class Journal:
    """The output file: whole JSON lines, appended; the last line per id counts."""

    def __init__(
        self, path: Path, *, sync_every_s: float = 1.0, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self.path = path
        self.sync_every_s = sync_every_s
        self._clock = clock or time.monotonic
        self._fd: int | None = None
        self._last_sync = 0.0
        self._dirty = False

    # -- reading --------------------------------------------------------------------

    def load(self) -> Loaded:
        """Read what earlier runs wrote, dropping a torn last line (a write cut short)."""
        loaded = Loaded()
        if not self.path.exists():
            return loaded
        with self.path.open("rb") as f:
            data = f.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            # A line without its newline was cut short (out of disk, power cut): it is
            # not a result, and the next line appended must start on a line of its own.
            loaded.truncated = len(data) - end
            os.truncate(self.path, end)
            data = data[:end]
        last: dict[Key, bool] = {}
        for key, ok in _outcomes(data, loaded):
            if key in last:
                loaded.superseded += 1
            last[key] = ok
        for key, ok in last.items():
            (loaded.ok if ok else loaded.failed).add(key)
        return loaded

    # -- writing --------------------------------------------------------------------

    def open(self) -> None:
        """Open for appending, and lock: a second batch on the same file is refused."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            _lock(fd, self.path)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._last_sync = self._clock()

    def append(self, line: bytes) -> None:
        """Write one whole line with one ``write``; fsync at most every ``sync_every_s``."""
        assert self._fd is not None, "open() first"
        data = line + b"\n"
        written = os.write(self._fd, data)
        if written != len(data):  # only on a full disk; the torn line is dropped on load
            raise OSError(f"short write to {self.path} ({written} of {len(data)} bytes)")
        self._dirty = True
        if self._clock() - self._last_sync >= self.sync_every_s:
            self.sync()

    def sync(self) -> None:
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self._dirty = False
        self._last_sync = self._clock()

    def close(self) -> None:
        if self._fd is not None:
            try:
                self.sync()
            finally:
                os.close(self._fd)
                self._fd = None

    def compact(self) -> int:
        """Rewrite the file with only the last line of each id; the lines dropped.

        The new file is written beside the old one, fsynced, then renamed
        over it: a crash at any point leaves one complete file or the other.
        """
        if not self.path.exists():
            return 0
        data = self.path.read_bytes()
        lines = [ln for ln in data.split(b"\n") if ln.strip()]
        keys = [_key_of(ln) for ln in lines]
        last_index = {key: i for i, key in enumerate(keys) if key is not None}
        keep = [
            ln
            for i, (ln, key) in enumerate(zip(lines, keys, strict=True))
            if key is not None and last_index[key] == i
        ]
        dropped = len(lines) - len(keep)
        if dropped == 0:
            return 0
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(b"".join(ln + b"\n" for ln in keep))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path.parent)
        return dropped


class JournalWriter:
    """Appends lines off the event loop; a cancelled caller never tears a write."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._last: asyncio.Future[None] | None = None

    async def write(self, line: bytes) -> None:
        self._last = asyncio.ensure_future(asyncio.to_thread(self.journal.append, line))
        await asyncio.shield(self._last)

    async def drain(self) -> None:
        """Wait for the write in progress, if any (so the file can be closed)."""
        if self._last is not None:
            await asyncio.gather(self._last, return_exceptions=True)


class _LineUsage(msgspec.Struct):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None


class _OutputLine(msgspec.Struct):
    id: str | int
    error: Any = None
    usage: _LineUsage | None = None
    attempts: int = 0


_out_decoder = msgspec.json.Decoder(_OutputLine)


def _key_of(line: bytes) -> Key | None:
    try:
        return id_key(_out_decoder.decode(line).id)
    except msgspec.DecodeError:
        return None


def _outcomes(data: bytes, loaded: Loaded) -> Iterator[tuple[Key, bool]]:
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        loaded.lines += 1
        try:
            out = _out_decoder.decode(line)
        except msgspec.DecodeError:
            loaded.unreadable += 1
            continue
        u = out.usage or _LineUsage()
        loaded.spent += UsageTotals(
            max(out.attempts, 0),
            max(u.input_tokens, 0),
            max(u.output_tokens, 0),
            max(u.cost_usd or 0.0, 0.0),
            0,
        )
        yield id_key(out.id), out.error is None


def _lock(fd: int, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise OSError(f"another llmpipe batch is writing to {path}") from None


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
