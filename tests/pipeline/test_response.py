"""``Response.to_message()``, ``tool_result()`` and ``collect(on_event=...)``."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest

import pipeline
from pipeline import Request, Response, tool_result
from pipeline.events import Event, TextDelta, ToolCall
from pipeline.testing import text_chunks

CALLS = (
    ToolCall(id="c1", name="get_weather", arguments={"city": "Paris"}),
    ToolCall(id="c2", name="get_weather", arguments={"city": "Zürich", "days": [1, 2]}),
)


def test_a_text_answer_becomes_an_assistant_text_message() -> None:
    assert Response(text="Sunny.").to_message() == {"role": "assistant", "content": "Sunny."}


def test_tool_calls_become_openai_tool_calls_with_json_text_arguments() -> None:
    msg = Response(text="", tool_calls=CALLS).to_message()
    assert msg == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "c2",
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "arguments": '{"city":"Zürich","days":[1,2]}',
                },
            },
        ],
    }
    assert [json.loads(c["function"]["arguments"]) for c in msg["tool_calls"]] == [
        c.arguments for c in CALLS
    ]


def test_text_with_tool_calls_and_reasoning_keeps_all_three() -> None:
    msg = Response(
        text="Let me check.", tool_calls=CALLS[:1], reasoning="The user wants"
    ).to_message()
    assert msg["content"] == "Let me check."
    assert msg["reasoning_content"] == "The user wants"
    assert [c["id"] for c in msg["tool_calls"]] == ["c1"]


def test_the_message_is_valid_in_the_next_request_unchanged() -> None:
    turn = Response(text="", tool_calls=CALLS, reasoning="r").to_message()
    messages = [{"role": "user", "content": "hi"}, turn, tool_result(CALLS[0], "sunny")]
    messages.append(tool_result(CALLS[1], {"sky": "clear"}))
    assert Request(model="openai/m", messages=messages).messages[1] == turn


@dataclasses.dataclass
class Forecast:
    city: str
    when: datetime.date


@pytest.mark.parametrize(
    ("content", "sent"),
    [
        ("sunny, 21 °C", "sunny, 21 °C"),
        ('{"already": "json"}', '{"already": "json"}'),
        ({"city": "Zürich", "celsius": 21.5}, '{"city":"Zürich","celsius":21.5}'),
        ([1, "two", None], '[1,"two",null]'),
        (42, "42"),
        (None, "null"),
        (Forecast("Paris", datetime.date(2025, 1, 2)), '{"city":"Paris","when":"2025-01-02"}'),
    ],
    ids=["text", "json-text", "dict", "list", "number", "none", "dataclass"],
)
def test_tool_result_sends_strings_as_they_are_and_encodes_anything_else_once(
    content: object, sent: str
) -> None:
    assert tool_result(CALLS[0], content) == {
        "role": "tool",
        "tool_call_id": "c1",
        "content": sent,
    }
    assert tool_result("c9", content)["tool_call_id"] == "c9"


@pytest.mark.parametrize(
    "content", [object(), {"f": lambda: 1}, b"raw bytes"], ids=["object", "lambda", "bytes"]
)
def test_tool_result_refuses_what_json_cannot_carry_naming_the_call(content: object) -> None:
    with pytest.raises(TypeError, match="get_weather"):
        tool_result(CALLS[0], content)


def test_tool_result_refuses_something_that_is_not_a_call() -> None:
    with pytest.raises(TypeError, match="ToolCall"):
        tool_result({"id": "c1"}, "x")  # type: ignore[arg-type]


async def test_collect_shows_every_event_to_on_event_as_it_folds_them() -> None:
    async def events() -> Any:
        for chunk in text_chunks():  # a Chunk is an event too
            yield chunk
        yield TextDelta(text="Hel")
        yield TextDelta(text="lo")

    seen: list[Event] = []
    resp = await pipeline.collect(events(), on_event=seen.append)
    assert resp.text == "Hello"
    assert seen[-2:] == [TextDelta(text="Hel"), TextDelta(text="lo")]
    assert len(seen) == len(text_chunks()) + 2
