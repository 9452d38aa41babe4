"""The input of ``llmpipe batch``: JSONL lines, each checked before anything is sent.

One JSON object per line, ``{"id": ..., "prompt": ...}`` or ``{"id": ...,
"messages": [...]}``, with optional per-line overrides. A bad line becomes a
``Problem`` naming its line number, never an exception. (The output file is
``pipeline.cli.batch.journal``.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pipeline.errors import InvalidRequest
from pipeline.request import Request

__all__ = [
    "Defaults",
    "InputLine",
    "Item",
    "Key",
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
