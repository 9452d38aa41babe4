"""Tool-call assembly and argument repair: pure, synchronous, no event loop.

``ToolCallAssembler`` collects streamed fragments into calls. A fragment goes
to a call by **id** when it has one; an id-less fragment goes to the call
last announced at its **index**; one with neither goes to the **latest**
call. That covers well-behaved providers (index per call, id on the first
fragment) and bridges that send every parallel call at index 0 with distinct
ids (litellm's Responses bridge): each new id takes the index over, so the
id-less continuations that follow land in the call just announced.

``parse_arguments`` parses a call's JSON arguments, closing truncated JSON
when that yields an object (the call is then marked repaired), and raises
``MalformedToolCall`` otherwise.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import MalformedToolCall
from pipeline.events import ToolCall, ToolFragment

__all__ = ["ToolCallAssembler", "close_truncated_json", "parse_arguments", "repair_json_object"]

#: how many trailing characters repair may give up to reach valid JSON
MAX_TRIM = 256
#: arguments longer than this are not repaired (each attempt parses them whole)
MAX_REPAIR_CHARS = 1024 * 1024


@dataclass(slots=True)
class _Call:
    id: str
    name: str = ""
    parts: list[str] = field(default_factory=list)


class ToolCallAssembler:
    """Fragments in (``add``), complete ``ToolCall``s out (``finish``)."""

    __slots__ = ("_by_id", "_by_index", "_calls", "_latest")

    def __init__(self) -> None:
        self._calls: list[_Call] = []
        self._by_id: dict[str, _Call] = {}
        self._by_index: dict[int, _Call] = {}
        self._latest: _Call | None = None

    def __bool__(self) -> bool:
        return bool(self._calls)

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, frag: ToolFragment) -> None:
        call = self._route(frag)
        if frag.name:
            call.name = frag.name
        if frag.arguments:
            call.parts.append(frag.arguments)
        self._latest = call

    def _route(self, frag: ToolFragment) -> _Call:
        if frag.id:
            call = self._by_id.get(frag.id)
            if call is None:
                # An id-less call already opened at this index takes its id now.
                pending = self._by_index.get(frag.index) if frag.index is not None else None
                if pending is not None and pending.id == "" and pending.parts == []:
                    call = pending
                    call.id = frag.id
                else:
                    call = self._open(frag.id)
                self._by_id[frag.id] = call
            if frag.index is not None:
                self._by_index[frag.index] = call
            return call
        if frag.index is not None:
            call = self._by_index.get(frag.index)
            if call is None:
                call = self._by_index[frag.index] = self._open("")
            return call
        return self._latest or self._open("")

    def _open(self, call_id: str) -> _Call:
        call = _Call(call_id)
        self._calls.append(call)
        return call

    def finish(self) -> list[ToolCall]:
        """Every call, parsed; raises before returning any if one cannot be parsed."""
        out = []
        for call in self._calls:
            call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"
            raw = "".join(call.parts)
            arguments, repaired = parse_arguments(raw, tool_name=call.name, tool_call_id=call_id)
            out.append(ToolCall(id=call_id, name=call.name, arguments=arguments, repaired=repaired))
        return out


def parse_arguments(
    raw: str, *, tool_name: str, tool_call_id: str = ""
) -> tuple[dict[str, Any], bool]:
    """``(arguments, repaired)`` for a call's raw argument string."""
    if not raw.strip():
        return {}, False
    value, why = _loads(raw)
    if isinstance(value, dict):
        return value, False
    repaired = repair_json_object(raw) if why is None else None
    if repaired is not None:
        return repaired, True
    raise MalformedToolCall(
        f"failed to parse the arguments of tool call {tool_name!r}: not a JSON object"
        f" and not repairable ({why or 'truncated or malformed output'})",
        tool_name=tool_name,
        tool_call_id=tool_call_id,
        raw_arguments=raw,
    )


def repair_json_object(raw: str) -> dict[str, Any] | None:
    """The longest prefix of ``raw`` (giving up at most ``MAX_TRIM`` characters)
    that, once its open strings and brackets are closed, is a JSON object."""
    text = raw.strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("json").strip()
    if not text.startswith("{") or len(text) > MAX_REPAIR_CHARS:
        return None
    for end in range(len(text), max(len(text) - MAX_TRIM, 0) - 1, -1):
        candidate = close_truncated_json(text[:end])
        if not candidate:
            continue
        value, why = _loads(candidate)
        if why is not None:  # nested too deeply: no prefix will parse either
            return None
        if isinstance(value, dict):
            return value
    return None


def _loads(text: str) -> tuple[Any, str | None]:
    """``(value, None)``; ``(None, None)`` for invalid JSON; ``(None, why)`` for JSON
    nested too deeply to parse (``RecursionError`` never escapes)."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError:
        return None, None
    except RecursionError:
        return None, "nested too deeply"


def close_truncated_json(fragment: str) -> str:
    """Close what a truncated JSON text left open: a string, arrays, objects.

    Dangling separators and openers at the very end (``,`` ``:`` ``{`` ``[``)
    are dropped first, since nothing can complete them.
    """
    text = fragment.rstrip()
    while text and text[-1] in ",:{[":
        text = text[:-1].rstrip()
    closers: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            closers.append("}")
        elif ch == "[":
            closers.append("]")
        elif ch in "}]" and closers and closers[-1] == ch:
            closers.pop()
    if in_string:
        text = (text[:-1] if escaped else text) + '"'
    return text + "".join(reversed(closers))
