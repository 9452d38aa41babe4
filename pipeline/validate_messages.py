"""Messages as providers take them: roles, content parts and tool calls.

``check_message`` checks one message (a plain dict) and everything in it; the JSON
rules common to every field (UTF-8 text, finite numbers, bounded depth) come from
``pipeline.validate``. Each role may send only the content parts it can carry
(``CONTENT_PARTS``: an image in a system message is refused), and each part type
must have what it needs (a ``text`` string, an ``image_url`` URL, audio data and
format, a file's data or id). Assistant ``tool_calls`` entries are checked in the
OpenAI shape: ``{"id", "type": "function", "function": {"name", "arguments"}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipeline.errors import InvalidRequest
from pipeline.validate import NAME_SAFE, TOOL_NAME, check_json, shown

__all__ = ["CONTENT_PARTS", "check_message"]

#: the content part types each role may send, and what each part requires
CONTENT_PARTS: Mapping[str, frozenset[str]] = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file", "document", "video_url"}),
    "assistant": frozenset(
        {"text", "refusal", "thinking", "redacted_thinking", "image_url", "input_audio", "file"}
    ),
    "tool": frozenset({"text", "image_url", "input_audio", "file", "tool_reference"}),
}


def check_message(where: str, msg: dict[str, Any], roles: frozenset[str]) -> None:
    """One message, as a plain dict: role, content and parts, tool calls, ids."""
    role = msg.get("role")
    if not isinstance(role, str) or role not in roles:
        raise InvalidRequest(
            f"{where}.role", f"unknown role {shown(role)}; expected one of {sorted(roles)}"
        )
    content = msg.get("content")
    if content is None:
        # An assistant turn may be empty (a ghost turn, dropped by normalize) or
        # carry only tool calls; every other role needs content.
        if role != "assistant":
            raise InvalidRequest(f"{where}.content", f"a {role} message needs content")
    elif isinstance(content, list):
        if not content and role != "assistant":
            raise InvalidRequest(f"{where}.content", "needs at least one content part")
        for j, part in enumerate(content):
            _check_part(f"{where}.content[{j}]", role, part)
    elif not isinstance(content, str):
        raise InvalidRequest(
            f"{where}.content",
            f"must be a string or a list of content parts, got {type(content).__name__}",
        )
    tool_calls = msg.get("tool_calls")
    if tool_calls is not None:
        if role != "assistant":
            raise InvalidRequest(f"{where}.tool_calls", "only assistant messages carry tool calls")
        if not isinstance(tool_calls, list):
            raise InvalidRequest(f"{where}.tool_calls", "must be a list")
        for j, call in enumerate(tool_calls):
            _check_tool_call(f"{where}.tool_calls[{j}]", call)
    call_id = msg.get("tool_call_id")
    if role == "tool" and (not isinstance(call_id, str) or not call_id):
        raise InvalidRequest(f"{where}.tool_call_id", "a tool message needs the tool_call_id")
    if call_id is not None and not isinstance(call_id, str):
        raise InvalidRequest(f"{where}.tool_call_id", "must be a string")
    name = msg.get("name")
    if name is not None and (not isinstance(name, str) or not NAME_SAFE.fullmatch(name)):
        raise InvalidRequest(f"{where}.name", "must be a non-empty string without whitespace")
    check_json(where, msg)


def _check_part(where: str, role: str, part: object) -> None:
    if not isinstance(part, dict):
        raise InvalidRequest(where, f"must be a content part (a dict), got {type(part).__name__}")
    kind = part.get("type")
    if not isinstance(kind, str):
        raise InvalidRequest(f"{where}.type", "a content part needs a type such as 'text'")
    allowed = CONTENT_PARTS[role]
    if kind not in allowed:
        raise InvalidRequest(
            f"{where}.type", f"a {role} message cannot hold {shown(kind)} parts; {sorted(allowed)}"
        )
    need = _PART_NEEDS.get(kind)
    if need is not None:
        need(f"{where}", part)


def _need_str(where: str, part: Mapping[str, Any], key: str) -> None:
    if not isinstance(part.get(key), str):
        raise InvalidRequest(f"{where}.{key}", f"a {part['type']} part needs {key} as a string")


def _need_url(where: str, part: Mapping[str, Any], key: str) -> None:
    value = part.get(key)
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f"{where}.{key}", f"needs a URL (a string, or {{'url': ...}}), got {type(url).__name__}"
        )


def _need_audio(where: str, part: Mapping[str, Any]) -> None:
    audio = part.get("input_audio")
    if not isinstance(audio, dict) or not all(
        isinstance(audio.get(k), str) and audio.get(k) for k in ("data", "format")
    ):
        raise InvalidRequest(f"{where}.input_audio", "needs {'data': base64, 'format': 'wav'|...}")


def _need_file(where: str, part: Mapping[str, Any]) -> None:
    file = part.get("file")
    if not isinstance(file, dict) or not any(
        isinstance(file.get(k), str) and file.get(k) for k in ("file_data", "file_id")
    ):
        raise InvalidRequest(f"{where}.file", "needs file_data (base64 data URL) or file_id")


def _need_mapping(where: str, part: Mapping[str, Any], key: str) -> None:
    if not isinstance(part.get(key), dict):
        raise InvalidRequest(f"{where}.{key}", f"a {part['type']} part needs {key} as a dict")


_PART_NEEDS: Mapping[str, Callable[[str, Mapping[str, Any]], None]] = {
    "text": lambda w, p: _need_str(w, p, "text"),
    "refusal": lambda w, p: _need_str(w, p, "refusal"),
    "thinking": lambda w, p: _need_str(w, p, "thinking"),
    "redacted_thinking": lambda w, p: _need_str(w, p, "data"),
    "tool_reference": lambda w, p: _need_str(w, p, "tool_name"),
    "image_url": lambda w, p: _need_url(w, p, "image_url"),
    "video_url": lambda w, p: _need_url(w, p, "video_url"),
    "input_audio": _need_audio,
    "file": _need_file,
    "document": lambda w, p: _need_mapping(w, p, "source"),
}


def _check_tool_call(where: str, call: object) -> None:
    """An OpenAI ``tool_calls`` entry: ``{id, type: function, function: {name, arguments}}``."""
    if not isinstance(call, dict):
        raise InvalidRequest(where, f"must be a dict, got {type(call).__name__}")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequest(f"{where}.id", "a tool call needs a non-empty string id")
    if call.get("type") != "function":
        raise InvalidRequest(f"{where}.type", "must be 'function'")
    function = call.get("function")
    if not isinstance(function, dict):
        raise InvalidRequest(f"{where}.function", "must be {'name': ..., 'arguments': '...'}")
    name = function.get("name")
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        raise InvalidRequest(f"{where}.function.name", "must match ^[a-zA-Z0-9_-]{1,64}$")
    if not isinstance(function.get("arguments"), str):
        raise InvalidRequest(
            f"{where}.function.arguments", "must be the arguments as a JSON string"
        )
