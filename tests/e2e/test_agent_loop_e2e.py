"""A tool-using agent loop through real litellm: what reaches the server on each turn."""

from __future__ import annotations

from typing import Any

from pipeline import Pipeline, ToolSpec, tool_result
from pipeline.events import ToolCall
from pipeline.testing import FakeProvider, FinishStep, Reasoning, Reply, Text, ToolDelta


async def test_tool_call_events_appended_to_an_assistant_message_reach_the_server(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.tool_calls(("c1", "get_weather", {"city": "Paris"})), Reply.text("Sunny."))
    first = request_to(messages=[{"role": "user", "content": "Weather in Paris?"}])
    resp = await pipe.acomplete(first)
    assert resp.tool_calls == (ToolCall(id="c1", name="get_weather", arguments={"city": "Paris"}),)
    messages = [
        *first.messages,
        {"role": "assistant", "content": None, "tool_calls": list(resp.tool_calls)},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    assert (await pipe.acomplete(request_to(messages=messages))).text == "Sunny."
    sent = fake.requests[1].body["messages"]
    assert sent[1]["tool_calls"] == [
        {
            "id": "c1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
        }
    ]


WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"properties": {"city": {"type": "string"}}, "required": ["city"]},
)
CELSIUS = {"Paris": 21, "Rome": 25, "Oslo": 3}
TURNS = (
    Reply(
        (
            Reasoning("Two cities: two calls."),
            Text("Checking both."),
            ToolDelta(0, "c1", "get_weather", '{"city": '),
            ToolDelta(0, arguments='"Paris"}'),
            ToolDelta(1, "c2", "get_weather", '{"city": "Rome"}'),
            FinishStep("tool_calls"),
        )
    ),
    Reply.tool_calls(("c3", "get_weather", {"city": "Oslo"})),
    Reply.text("Paris 21, Rome 25, Oslo 3."),
)


async def agent_loop(
    pipe: Pipeline, request_to, question: str, **fields: Any
) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The README's loop: ask, run the tools called, append, ask again until no tool call."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": question}]
    while True:
        resp = await pipe.acomplete(request_to(messages=messages, tools=[WEATHER], **fields))
        messages.append(resp.to_message())
        if not resp.tool_calls:
            return messages
        for call in resp.tool_calls:
            city = call.arguments["city"]
            messages.append(tool_result(call, {"city": city, "celsius": CELSIUS[city]}))


def call(call_id: str, city: str) -> dict[str, Any]:
    arguments = f'{{"city":"{city}"}}'
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }


def result(call_id: str, city: str) -> dict[str, Any]:
    content = f'{{"city":"{city}","celsius":{CELSIUS[city]}}}'
    return {"role": "tool", "tool_call_id": call_id, "content": content}


async def test_a_three_turn_loop_with_parallel_tool_calls_sends_exactly_the_conversation(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(*TURNS)
    messages = await agent_loop(pipe, request_to, "Weather in Paris, Rome and Oslo?")
    user = {"role": "user", "content": "Weather in Paris, Rome and Oslo?"}
    turn1 = {
        "role": "assistant",
        "content": "Checking both.",
        "tool_calls": [call("c1", "Paris"), call("c2", "Rome")],
    }
    turn2 = {"role": "assistant", "tool_calls": [call("c3", "Oslo")]}  # litellm drops content=None
    sent = [r.body["messages"] for r in fake.requests]
    assert sent == [
        [user],
        [user, turn1, result("c1", "Paris"), result("c2", "Rome")],
        [user, turn1, result("c1", "Paris"), result("c2", "Rome"), turn2, result("c3", "Oslo")],
    ]
    assert [r.body["tools"][0]["function"]["name"] for r in fake.requests] == ["get_weather"] * 3
    # The caller's history keeps the reasoning; the OpenAI profile did not send it.
    assert messages[1] == {**turn1, "reasoning_content": "Two cities: two calls."}
    assert messages[4] == {**turn2, "content": None}
    assert messages[-1] == {"role": "assistant", "content": "Paris 21, Rome 25, Oslo 3."}


async def test_reasoning_goes_back_to_a_provider_that_needs_it(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(*TURNS)
    await agent_loop(pipe, request_to, "Weather?", model="deepseek/deepseek-reasoner")
    second = fake.requests[1].body["messages"]
    assert second[1]["reasoning_content"] == "Two cities: two calls."
    assert second[1]["tool_calls"] == [call("c1", "Paris"), call("c2", "Rome")]
