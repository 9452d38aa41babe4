from typing import Any

import pytest

from pipeline.errors import InvalidRequest, PipelineError
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
