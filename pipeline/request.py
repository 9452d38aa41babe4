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

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import msgspec

from pipeline import validate
from pipeline._struct import EventBase
from pipeline.errors import InvalidRequest, redact
from pipeline.fallbacks import Target, coerce_targets
from pipeline.validate_messages import check_message

if TYPE_CHECKING:
    from pipeline.events import ToolCall

__all__ = ["ROLES", "Message", "Request", "ToolSpec", "derived", "openai_tool_calls"]

#: set only while ``derived`` makes a request from a validated one
_DERIVING: ContextVar[bool] = ContextVar("llmpipe_deriving", default=False)

#: roles a message may have
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


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

    ``fallbacks``: the targets to move on to when this model fails before
    any content arrived (``pipeline.fallbacks.Target`` or dicts of its
    fields); ``None`` uses the pipeline's, ``[]`` none at all.
    ``api_key`` (its own and its fallbacks') never appears in ``repr``, logs,
    spans, dumps or encoded events.
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
    fallbacks: list[Target] | None = None

    def __post_init__(self) -> None:
        if _DERIVING.get():  # made by ``derived`` from a request that was validated
            return
        validate.check_model(self.model)
        msgspec.structs.force_setattr(self, "messages", _coerce_messages(self.messages))
        if self.tools is not None:
            msgspec.structs.force_setattr(self, "tools", _coerce_tools(self.tools))
        _check_scalars(self)
        if self.fallbacks is not None:
            targets = coerce_targets("fallbacks", self.fallbacks)
            msgspec.structs.force_setattr(self, "fallbacks", targets)

    def without_secrets(self) -> Request:
        """This request with no API key in it (its fallbacks' keys too): what is shown or stored."""
        if self.api_key is None and not any(t.api_key for t in self.fallbacks or ()):
            return self
        fallbacks = self.fallbacks
        if fallbacks is not None:
            fallbacks = [msgspec.structs.replace(t, api_key=None) for t in fallbacks]
        return msgspec.structs.replace(self, api_key=None, fallbacks=fallbacks)

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return (
            f"Request(model={self.model!r}, messages=<{len(self.messages)} messages>, "
            f"system={'<set>' if self.system else None}, "
            f"tools={[t.name for t in self.tools] if self.tools else None}, "
            f"max_tokens={self.max_tokens}, json_mode={self.json_mode}, "
            f"api_base={redact(self.api_base) if self.api_base else None!r}, api_key={key}"
            + (f", fallbacks={[t.model for t in self.fallbacks]}" if self.fallbacks else "")
            + ")"
        )

    __str__ = __repr__


def derived(req: Request, **changes: Any) -> Request:
    """``req`` with ``changes``, not validated again: for the pipeline's own stages, whose
    changes are made of ``req``'s validated parts and the library's constants (normalize
    moving the system prompt into the messages, cache_tag marking them). It saves a
    second validation of every request (about 14 µs for a short one); anything else
    makes requests the validating way (``msgspec.structs.replace`` or the constructor).
    """
    token = _DERIVING.set(True)
    try:
        return msgspec.structs.replace(req, **changes)
    finally:
        _DERIVING.reset(token)


# --- validation (the rules are in ``pipeline.validate``) -------------------------------


def _coerce_messages(messages: object) -> list[dict[str, Any]]:
    if not isinstance(messages, list | tuple):
        raise InvalidRequest(
            "messages", f"must be a list of messages, got {type(messages).__name__}"
        )
    if not messages:
        raise InvalidRequest("messages", "is empty; a request needs at least one message")
    return [_coerce_message(i, m) for i, m in enumerate(messages)]


def _coerce_message(i: int, m: object) -> dict[str, Any]:
    where = f"messages[{i}]"
    if isinstance(m, Message):
        msg = _builtins(where, m)
    elif isinstance(m, Mapping):
        msg = dict(m)
    else:
        raise InvalidRequest(where, f"must be a dict or Message, got {type(m).__name__}")
    if msg.get("tool_calls") is not None:
        msg["tool_calls"] = openai_tool_calls(f"{where}.tool_calls", msg["tool_calls"])
    check_message(where, msg, ROLES)
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


def _builtins(where: str, m: Message) -> dict[str, Any]:
    try:
        return m._fields()
    except RecursionError:
        failed = "is nested too deeply to convert"
    except (TypeError, ValueError) as exc:
        failed = f"cannot be converted to JSON types ({type(exc).__name__})"
    raise InvalidRequest(where, failed)


def _coerce_tools(tools: object) -> list[ToolSpec]:
    if not isinstance(tools, list | tuple):
        raise InvalidRequest("tools", f"must be a list of tools, got {type(tools).__name__}")
    out = [_coerce_tool(i, t) for i, t in enumerate(tools)]
    seen: set[str] = set()
    for i, tool in enumerate(out):
        if tool.name in seen:
            raise InvalidRequest(f"tools[{i}].name", f"{tool.name!r} is declared twice")
        seen.add(tool.name)
    return out


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
    validate.check_tool_name(f"{where}.name", name)
    if not isinstance(description, str):
        raise InvalidRequest(f"{where}.description", "must be a string")
    validate.check_text(f"{where}.description", description)
    if parameters is None:
        parameters = {}
    if isinstance(parameters, Mapping) and not isinstance(parameters, dict):
        parameters = dict(parameters)
    validate.check_tool_schema(f"{where}.parameters", parameters)
    if isinstance(tool, ToolSpec) and parameters is tool.parameters:
        return tool
    return ToolSpec(name=name, description=description, parameters=parameters)  # type: ignore[arg-type]


def _check_scalars(req: Request) -> None:
    if req.system is not None:
        if not isinstance(req.system, str):
            raise InvalidRequest("system", f"must be a string, got {type(req.system).__name__}")
        validate.check_text("system", req.system)
    mt = req.max_tokens
    if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt <= 0):
        raise InvalidRequest("max_tokens", f"must be a positive integer, got {validate.shown(mt)}")
    if mt is not None and mt >= 2**31:
        raise InvalidRequest("max_tokens", f"{mt} is beyond what any provider accepts")
    if not isinstance(req.json_mode, bool):
        raise InvalidRequest(
            "json_mode", f"must be True or False, got {type(req.json_mode).__name__}"
        )
    if req.response_format is not None:
        validate.check_response_format(req.response_format)
    validate.check_api_key(req.api_key)
    validate.check_api_base(req.api_base)
    validate.check_extra(req.extra)
