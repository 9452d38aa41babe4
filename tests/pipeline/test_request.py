import json
from typing import Any

import pytest

from pipeline.errors import InvalidRequest, PipelineError
from pipeline.events import ToolCall
from pipeline.request import Message, Request, ToolSpec

USER = {"role": "user", "content": "hi"}


def req(**overrides: Any) -> Request:
    fields: dict[str, Any] = {"model": "openai/m", "messages": [USER]}
    fields.update(overrides)
    return Request(**fields)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": ""}, "model"),
        ({"model": "   "}, "model"),
        ({"messages": "hi"}, "messages"),
        ({"messages": {"role": "user", "content": "hi"}}, "messages"),
        ({"messages": [USER, "hi"]}, "messages[1]"),
        ({"messages": [{"role": "bot", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        ({"messages": [{"role": "system", "content": None}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "tool", "content": "r"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "assistant", "tool_calls": "x"}]}, "messages[0].tool_calls"),
        ({"tools": [{"description": "no name"}]}, "tools[0].name"),
        ({"tools": [ToolSpec(name="")]}, "tools[0].name"),
        ({"tools": [{"name": "t", "parameters": {"type": "string"}}]}, "tools[0].parameters"),
        ({"tools": [{"name": "t", "parameters": ["a"]}]}, "tools[0].parameters"),
        ({"tools": "search"}, "tools"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": -5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_tokens": 1.5}, "max_tokens"),
        ({"extra": {"temperature": object()}}, "extra.temperature"),
        ({"extra": {"callback": print}}, "extra.callback"),
        ({"extra": {"stream": False}}, "extra.stream"),
        ({"api_base": "localhost:8000"}, "api_base"),
    ],
)
def test_bad_input_raises_naming_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        req(**overrides)
    assert info.value.field == field
    assert field in str(info.value)
    assert isinstance(info.value, PipelineError)
    assert isinstance(info.value, ValueError)


def test_typed_and_dict_inputs_are_equivalent() -> None:
    typed = req(
        messages=[Message(role="user", content="hi")],
        tools=[ToolSpec(name="search", description="d", parameters={"type": "object"})],
    )
    plain = req(
        messages=[{"role": "user", "content": "hi"}],
        tools=[
            {
                "type": "function",
                "function": {
                    "name": "search",
                    "description": "d",
                    "parameters": {"type": "object"},
                },
            }
        ],
    )
    assert typed == plain
    assert typed.messages == [USER]


def test_flat_tool_dicts_are_accepted() -> None:
    r = req(tools=[{"name": "t", "description": "d", "parameters": {"properties": {}}}])
    assert r.tools == [ToolSpec(name="t", description="d", parameters={"properties": {}})]


def test_messages_are_copied_so_later_caller_edits_do_not_leak_in() -> None:
    msg = {"role": "user", "content": "hi"}
    r = req(messages=[msg])
    msg["content"] = "changed"
    assert r.messages[0]["content"] == "hi"


def test_ghost_and_tool_call_only_assistant_turns_are_valid() -> None:
    req(
        messages=[
            USER,
            {"role": "assistant", "content": ""},
            {"role": "assistant", "tool_calls": []},
        ]
    )


def test_api_key_never_appears_in_repr_or_str() -> None:
    r = req(api_key="sk-secret-123")
    assert "sk-secret-123" not in repr(r)
    assert "sk-secret-123" not in str(r)
    assert "***" in repr(r)


def test_error_messages_do_not_echo_the_key() -> None:
    with pytest.raises(InvalidRequest) as info:
        req(api_key="sk-secret-123", max_tokens=0)
    assert "sk-secret-123" not in str(info.value)


# --- tool calls in assistant messages ---------------------------------------------------

CALL = ToolCall(id="c1", name="get_weather", arguments={"city": "Zürich", "days": [1, 2]})
OPENAI_CALL = {
    "id": "c1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Zürich","days":[1,2]}'},
}
OTHER = {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}
TOOL_REPLY = {"role": "tool", "tool_call_id": "c1", "content": "sunny"}


@pytest.mark.parametrize(
    "assistant",
    [
        {"role": "assistant", "tool_calls": [CALL, OTHER]},
        {"role": "assistant", "tool_calls": (CALL, OTHER)},
        Message(role="assistant", tool_calls=[CALL, OTHER]),
        Message(role="assistant", tool_calls=(CALL, OTHER)),
    ],
    ids=["dict-list", "dict-tuple", "message-list", "message-tuple"],
)
def test_tool_call_events_in_an_assistant_message_become_openai_tool_calls(
    assistant: object,
) -> None:
    r = req(messages=[USER, assistant, TOOL_REPLY])
    assert r.messages[1] == {"role": "assistant", "tool_calls": [OPENAI_CALL, OTHER]}
    sent = r.messages[1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == CALL.arguments


def test_message_to_dict_converts_tool_call_events_too() -> None:
    msg = Message(role="assistant", content="Checking.", tool_calls=[CALL])
    assert msg.to_dict() == {
        "role": "assistant",
        "content": "Checking.",
        "tool_calls": [OPENAI_CALL],
    }


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("c1", "messages[1].tool_calls[0]"),
        (ToolSpec(name="get_weather"), "messages[1].tool_calls[0]"),
        (42, "messages[1].tool_calls[0]"),
    ],
    ids=["a-string", "a-tool-spec", "a-number"],
)
def test_tool_call_entries_that_cannot_be_converted_are_refused_naming_the_entry(
    entry: object, field: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        req(messages=[USER, {"role": "assistant", "tool_calls": [entry]}])
    assert info.value.field == field


def test_tool_call_arguments_that_are_not_json_are_refused_naming_the_entry() -> None:
    odd = ToolCall(id="c1", name="f", arguments={"when": object()})
    with pytest.raises(InvalidRequest) as info:
        req(messages=[USER, Message(role="assistant", tool_calls=[CALL, odd])])
    assert info.value.field == "messages[1].tool_calls[1].arguments"
