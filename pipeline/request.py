"""What callers pass in: ``Request``, ``Message``, ``ToolSpec``, and their validation.

A ``Request`` validates itself when it is built, so an invalid request cannot
exist and therefore cannot be sent: every problem raises
``pipeline.errors.InvalidRequest`` naming the field. Messages and tools are
accepted as plain OpenAI-format dicts as well as Structs; messages are kept
as plain dicts (what providers take), tools as ``ToolSpec``.

Stages never mutate a request's lists or dicts in place; they build a new
``Request`` with ``msgspec.structs.replace``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from pipeline._struct import EventBase
from pipeline.errors import InvalidRequest

if TYPE_CHECKING:
    from pipeline.events import ToolCall

__all__ = ["ROLES", "Message", "Request", "ToolSpec", "openai_tool_calls"]

#: roles a message may have
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})

#: keys of ``Request.extra`` that would silently override what the pipeline sets
_RESERVED_EXTRA = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "tools",
        "max_tokens",
        "api_key",
        "api_base",
        "response_format",
        "max_retries",
        "num_retries",
    }
)


class Message(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One chat message; a typed alternative to an OpenAI-format dict.

    ``tool_calls`` takes OpenAI-format dicts or the ``ToolCall`` events of a
    response (``resp.tool_calls``), converted when the message is used.
    """

    role: str
    content: str | list[dict[str, Any]] | None = None
    tool_calls: Sequence[dict[str, Any] | ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The OpenAI-format dict (``ToolCall`` entries converted)."""
        out = self._fields()
        if "tool_calls" in out:
            out["tool_calls"] = openai_tool_calls("tool_calls", out["tool_calls"])
        return out

    def _fields(self) -> dict[str, Any]:
        # The fields as given (tool_calls unconverted), defaults left out.
        calls = self.tool_calls
        out: dict[str, Any] = msgspec.to_builtins(msgspec.structs.replace(self, tool_calls=None))
        if calls is not None:
            out["tool_calls"] = calls
        return out


class ToolSpec(msgspec.Struct, frozen=True, kw_only=True):
    """A tool the model may call. ``parameters`` is a JSON-schema object."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = {}

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI function-tool format that litellm takes for every provider."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


class Request(EventBase, frozen=True, tag="request"):
    """One chat-completion request; the first event of every pipeline run.

    ``api_key`` never appears in ``repr``, logs, spans or dumps.
    """

    model: str
    messages: list[dict[str, Any]]
    system: str | None = None
    tools: list[ToolSpec] | None = None
    max_tokens: int | None = 4096
    response_format: dict[str, Any] | None = None
    json_mode: bool = False
    api_key: str | None = None
    api_base: str | None = None
    extra: dict[str, Any] = {}

    def __post_init__(self) -> None:
        _check_model(self.model)
        msgspec.structs.force_setattr(self, "messages", _coerce_messages(self.messages))
        if self.tools is not None:
            msgspec.structs.force_setattr(self, "tools", _coerce_tools(self.tools))
        _check_scalars(self)

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return (
            f"Request(model={self.model!r}, messages=<{len(self.messages)} messages>, "
            f"system={'<set>' if self.system else None}, "
            f"tools={[t.name for t in self.tools] if self.tools else None}, "
            f"max_tokens={self.max_tokens}, json_mode={self.json_mode}, "
            f"api_base={self.api_base!r}, api_key={key})"
        )

    __str__ = __repr__


# --- validation -----------------------------------------------------------------


def _check_model(model: object) -> None:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model", "must be a non-empty string such as 'openai/gpt-4o-mini'")


def _coerce_messages(messages: object) -> list[dict[str, Any]]:
    if not isinstance(messages, list | tuple):
        raise InvalidRequest(
            "messages", f"must be a list of messages, got {type(messages).__name__}"
        )
    return [_coerce_message(i, m) for i, m in enumerate(messages)]


def _coerce_message(i: int, m: object) -> dict[str, Any]:
    where = f"messages[{i}]"
    if isinstance(m, Message):
        msg = m._fields()
    elif isinstance(m, Mapping):
        msg = dict(m)
    else:
        raise InvalidRequest(where, f"must be a dict or Message, got {type(m).__name__}")
    role = msg.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"{where}.role", f"unknown role {role!r}; expected one of {sorted(ROLES)}"
        )
    content = msg.get("content")
    if content is not None and not isinstance(content, str | list):
        raise InvalidRequest(f"{where}.content", "must be a string or a list of content parts")
    if msg.get("tool_calls") is not None:
        msg["tool_calls"] = openai_tool_calls(f"{where}.tool_calls", msg["tool_calls"])
    # An assistant turn may be empty (a ghost turn, dropped by normalize) or
    # carry only tool calls; every other role needs content.
    if role != "assistant" and content is None:
        raise InvalidRequest(f"{where}.content", f"a {role} message needs content")
    if role == "tool" and not isinstance(msg.get("tool_call_id"), str):
        raise InvalidRequest(f"{where}.tool_call_id", "a tool message needs the tool_call_id")
    return msg


def openai_tool_calls(where: str, calls: object) -> list[Any]:
    """An assistant message's ``tool_calls`` as OpenAI-format dicts.

    ``ToolCall`` events (what ``Response.tool_calls`` holds) are converted,
    arguments as JSON text; dicts are taken as they are (a copy). Anything
    else raises ``InvalidRequest`` naming the entry, instead of reaching the
    provider as something it would drop.
    """
    from pipeline.events import ToolCall  # events imports this module

    if not isinstance(calls, list | tuple):
        raise InvalidRequest(where, "must be a list")
    out: list[Any] = []
    for j, call in enumerate(calls):
        if isinstance(call, ToolCall):
            try:
                arguments = msgspec.json.encode(call.arguments).decode()
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(
                    f"{where}[{j}].arguments", f"must be JSON-serialisable ({exc})"
                ) from exc
            function = {"name": call.name, "arguments": arguments}
            out.append({"id": call.id, "type": "function", "function": function})
        elif isinstance(call, Mapping):
            out.append(dict(call))
        else:
            raise InvalidRequest(
                f"{where}[{j}]",
                "must be an OpenAI-format tool call dict or a pipeline.events.ToolCall,"
                f" got {type(call).__name__}",
            )
    return out


def _coerce_tools(tools: object) -> list[ToolSpec]:
    if not isinstance(tools, list | tuple):
        raise InvalidRequest("tools", f"must be a list of tools, got {type(tools).__name__}")
    return [_coerce_tool(i, t) for i, t in enumerate(tools)]


def _coerce_tool(i: int, tool: object) -> ToolSpec:
    where = f"tools[{i}]"
    name: object
    description: object
    parameters: object
    if isinstance(tool, ToolSpec):
        name, description, parameters = tool.name, tool.description, tool.parameters
    elif isinstance(tool, Mapping):
        spec: Mapping[str, Any] = tool
        if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
            spec = tool["function"]
        name = spec.get("name")
        description = spec.get("description") or ""
        parameters = spec.get("parameters", {})
    else:
        raise InvalidRequest(where, f"must be a ToolSpec or dict, got {type(tool).__name__}")
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"{where}.name", "a tool needs a non-empty name")
    if not isinstance(description, str):
        raise InvalidRequest(f"{where}.description", "must be a string")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping) or parameters.get("type", "object") != "object":
        raise InvalidRequest(f"{where}.parameters", "must be a JSON-schema object")
    if isinstance(tool, ToolSpec):
        return tool
    return ToolSpec(name=name, description=description, parameters=dict(parameters))


def _check_scalars(req: Request) -> None:
    if req.system is not None and not isinstance(req.system, str):
        raise InvalidRequest("system", "must be a string")
    mt = req.max_tokens
    if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt <= 0):
        raise InvalidRequest("max_tokens", f"must be a positive integer, got {mt!r}")
    if req.response_format is not None and not isinstance(req.response_format, Mapping):
        raise InvalidRequest("response_format", "must be a dict")
    if req.api_key is not None and not isinstance(req.api_key, str):
        raise InvalidRequest("api_key", "must be a string")
    base = req.api_base
    if base is not None and (
        not isinstance(base, str) or not base.startswith(("http://", "https://"))
    ):
        raise InvalidRequest("api_base", "must be an http:// or https:// URL")
    _check_extra(req.extra)


def _check_extra(extra: object) -> None:
    if not isinstance(extra, Mapping):
        raise InvalidRequest("extra", "must be a dict of extra provider parameters")
    for key, value in extra.items():
        if key in _RESERVED_EXTRA:
            raise InvalidRequest(
                f"extra.{key}", "is set by the pipeline; use the Request field instead"
            )
        try:
            # stdlib json, as the HTTP clients use: msgspec would accept sets
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(
                f"extra.{key}", f"must be JSON-serialisable ({type(value).__name__} is not)"
            ) from exc
