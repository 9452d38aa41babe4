"""The files of ``llmpipe batch``: the JSONL input, and the output journal.

Input: one JSON object per line, ``{"id": ..., "prompt": ...}`` or
``{"id": ..., "messages": [...]}``, with optional per-line overrides. Every
line is checked before anything is sent; a bad one becomes a ``Problem``
naming its line number, never an exception.

Output: a journal of whole lines. Each result is one ``os.write`` of one
line to a file opened with ``O_APPEND``, so a killed process (even by
SIGKILL) leaves only whole lines, and the kernel has them as soon as the
write returns. ``fsync`` runs at most once a second and at the end, so a
power cut costs at most the last second of results, which a re-run redoes.
When an id has several lines (a failure, then its retry), the last one
counts; ``compact`` rewrites the file (temp file + rename) to one line per
id.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from pipeline.errors import InvalidRequest
from pipeline.request import Request

__all__ = [
    "Defaults",
    "InputLine",
    "Item",
    "Journal",
    "Parsed",
    "Problem",
    "id_key",
    "parse_input",
]

#: an id's identity: its JSON text, so 7 and "7" are different ids
Key = bytes


class InputLine(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One line of batch input; every field but ``id`` and the prompt is optional."""

    id: str | int
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    model: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    json: bool | None = None
    api_base: str | None = None
    temperature: float | None = None
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    extra: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Defaults:
    """What a line does not say, from the command line."""

    model: str | None = None
    system: str | None = None
    max_tokens: int | None = 4096
    json_mode: bool = False
    api_base: str | None = None
    api_key: str | None = None  # from --api-key-env; never written anywhere

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return (
            f"Defaults(model={self.model!r}, max_tokens={self.max_tokens},"
            f" json_mode={self.json_mode}, api_base={self.api_base!r}, api_key={key})"
        )


@dataclass(frozen=True, slots=True)
class Item:
    """One valid input line, as the request it asks for."""

    line: int
    id: str | int
    key: Key
    request: Request


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad input line: why, in one sentence."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(slots=True)
class Parsed:
    items: list[Item] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


_line_decoder = msgspec.json.Decoder(InputLine)
_encoder = msgspec.json.Encoder()


def id_key(value: str | int) -> Key:
    return _encoder.encode(value)


def parse_input(data: bytes, defaults: Defaults) -> Parsed:
    """Every line of a JSONL input, as items and problems (blank lines are skipped)."""
    parsed = Parsed()
    first_seen: dict[Key, int] = {}
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        try:
            item = parse_line(line, number, defaults)
        except _BadLine as bad:
            parsed.problems.append(Problem(number, str(bad)))
            continue
        if item.key in first_seen:
            parsed.problems.append(
                Problem(number, f"duplicate id {item.id!r} (first on line {first_seen[item.key]})")
            )
            continue
        first_seen[item.key] = number
        parsed.items.append(item)
    return parsed


class _BadLine(ValueError):
    pass


def parse_line(line: bytes, number: int, defaults: Defaults) -> Item:
    """One input line as an ``Item``; raises ``_BadLine`` saying what is wrong."""
    try:
        fields = _line_decoder.decode(line)
    except msgspec.ValidationError as exc:
        raise _BadLine(_explain(str(exc))) from None
    except msgspec.DecodeError as exc:
        raise _BadLine(f"not JSON ({exc})") from None
    if isinstance(fields.id, str) and not fields.id.strip():
        raise _BadLine("the id is empty")
    where = f"id {fields.id!r}: "
    if (fields.prompt is None) == (fields.messages is None):
        raise _BadLine(where + "give either a prompt or messages (exactly one of them)")
    if fields.prompt is not None and not fields.prompt.strip():
        raise _BadLine(where + str(InvalidRequest("prompt", "is empty")))  # as `run` says
    messages = (
        [{"role": "user", "content": fields.prompt}]
        if fields.prompt is not None
        else fields.messages
    )
    model = fields.model or defaults.model
    if model is None:
        raise _BadLine(where + "no model: give --model, or a model field on the line")
    extra = dict(fields.extra or {})
    if fields.temperature is not None:
        extra["temperature"] = fields.temperature
    try:
        request = Request(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            system=fields.system if fields.system is not None else defaults.system,
            max_tokens=fields.max_tokens if fields.max_tokens is not None else defaults.max_tokens,
            json_mode=fields.json if fields.json is not None else defaults.json_mode,
            api_base=fields.api_base or defaults.api_base,
            api_key=defaults.api_key,
            tools=fields.tools,  # type: ignore[arg-type]
            response_format=fields.response_format,
            extra=extra,
        )
    except InvalidRequest as exc:
        raise _BadLine(where + str(exc)) from None
    return Item(number, fields.id, id_key(fields.id), request)


def _explain(message: str) -> str:
    """msgspec's validation message, in the words of this file format."""
    if message.startswith("Object missing required field `id`"):
        return "no id"
    if message.startswith("Expected `object`") and " - at " not in message:
        return "not a JSON object"
    unknown = re.fullmatch(r"Object contains unknown field `(.*)`", message)
    if unknown:
        return f"unknown field {unknown[1]!r} (fields: {', '.join(InputLine.__struct_fields__)})"
    at = re.fullmatch(r"(.*) - at `\$\.?(.*)`", message)
    if at:
        what = at[1].replace("`", "")
        return f"{at[2]}: {what[:1].lower()}{what[1:]}"
    return message.replace("`", "")


# --- the output journal ---------------------------------------------------------------


@dataclass(slots=True)
class Loaded:
    """What an existing output file says: the last outcome per id."""

    ok: set[Key] = field(default_factory=set)
    failed: set[Key] = field(default_factory=set)
    lines: int = 0
    superseded: int = 0
    unreadable: int = 0
    truncated: int = 0


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


class _OutputLine(msgspec.Struct):
    id: str | int
    error: Any = None


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
