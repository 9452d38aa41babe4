"""The default stream path through real litellm over real HTTP to the fake provider."""

import json

import pytest

from pipeline import Pipeline, ToolSpec
from pipeline.errors import EmptyResponse, MalformedToolCall
from pipeline.events import Finish, TextDelta, TextEnd, ToolCall
from pipeline.testing import FakeProvider, FinishStep, Reply, Text, ToolDelta, UsageStep


async def test_text_streams_as_deltas_then_text_end_and_finish(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.text("Hel", "lo", " world"))
    async with pipe.stream(request_to()) as events:
        got = [ev async for ev in events]
    assert [e.text for e in got if isinstance(e, TextDelta)] == ["Hel", "lo", " world"]
    assert got[-2:] == [
        TextEnd(text="Hello world"),
        Finish(
            stop_reason="stop",
            input_tokens=10,
            output_tokens=5,
            model="fake-model",
            usage_source="provider",
        ),
    ]
    body = fake.requests[0].body
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test-key-not-real"


async def test_system_prompt_is_sent_first(pipe: Pipeline, fake: FakeProvider, request_to) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.text("ok"))
    await pipe.acomplete(request_to(system="You are a helpful assistant."))
    assert fake.requests[0].body["messages"][0] == {
        "role": "system",
        "content": "You are a helpful assistant.",
    }


async def test_json_mode_is_an_instruction_not_response_format(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.text('{"a": 1}'))
    resp = await pipe.acomplete(request_to(system="You are helpful.", json_mode=True))
    body = fake.requests[0].body
    assert "response_format" not in body
    assert (
        body["messages"][0]["content"]
        == "You are helpful.\n\nPlease respond with a valid JSON object."
    )
    assert json.loads(resp.text) == {"a": 1}


async def test_response_format_is_forwarded_unchanged(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.text("{}"))
    await pipe.acomplete(request_to(response_format={"type": "json_object"}))
    assert fake.requests[0].body["response_format"] == {"type": "json_object"}


async def test_tools_go_out_in_openai_function_format(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.tool_calls(("call_1", "get_weather", {"location": "Paris"})))
    tool = ToolSpec(
        name="get_weather",
        description="Get the weather for a location",
        parameters={
            "properties": {"location": {"type": "string", "description": "City name"}},
            "required": ["location"],
        },
    )
    resp = await pipe.acomplete(request_to(tools=[tool]))
    assert fake.requests[0].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather for a location",
                "parameters": {
                    "type": "object",
                    "properties": {"location": {"type": "string", "description": "City name"}},
                    "required": ["location"],
                },
            },
        }
    ]
    assert resp.tool_calls == (
        ToolCall(id="call_1", name="get_weather", arguments={"location": "Paris"}),
    )
    assert resp.stop_reason == "tool_calls"


async def test_parallel_tool_calls(pipe: Pipeline, fake: FakeProvider, request_to) -> None:  # type: ignore[no-untyped-def]
    fake.script(
        Reply.tool_calls(
            ("a", "search", {"q": "alpha"}),
            ("b", "read", {"path": "/x"}),
            ("c", "search", {"q": "gamma"}),
        )
    )
    resp = await pipe.acomplete(request_to(tools=[{"name": "search"}, {"name": "read"}]))
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("a", "search", {"q": "alpha"}),
        ("b", "read", {"path": "/x"}),
        ("c", "search", {"q": "gamma"}),
    ]


async def test_bridge_pattern_all_calls_at_index_zero(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(
        Reply(
            steps=(
                ToolDelta(index=0, id="call_A", name="get_weather", arguments=""),
                ToolDelta(index=0, arguments='{"city":'),
                ToolDelta(index=0, arguments='"Paris"}'),
                ToolDelta(index=0, id="call_B", name="get_weather", arguments=""),
                ToolDelta(index=0, arguments='{"city":"Rome"}'),
                FinishStep("tool_calls"),
                UsageStep(10, 5),
            )
        )
    )
    resp = await pipe.acomplete(request_to(tools=[{"name": "get_weather"}]))
    assert [(c.id, c.arguments, c.repaired) for c in resp.tool_calls] == [
        ("call_A", {"city": "Paris"}, False),
        ("call_B", {"city": "Rome"}, False),
    ]


async def test_truncated_arguments_are_repaired(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    raw = '{"question":"What story structure?","options":["3-act","Random"'
    fake.script(
        Reply(
            steps=(
                ToolDelta(index=0, id="c", name="ask_user", arguments=raw),
                FinishStep("length"),
                UsageStep(5, 5),
            )
        )
    )
    resp = await pipe.acomplete(request_to(tools=[{"name": "ask_user"}]))
    assert resp.tool_calls == (
        ToolCall(
            id="c",
            name="ask_user",
            arguments={"question": "What story structure?", "options": ["3-act", "Random"]},
            repaired=True,
        ),
    )


async def test_unrepairable_arguments_raise_without_partial_calls(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.tool_calls(("ok", "f", {}), ("bad", "g", '{"question": foo')))
    seen = []
    with pytest.raises(MalformedToolCall) as info:
        async with pipe.stream(request_to(tools=[{"name": "f"}, {"name": "g"}])) as events:
            async for ev in events:
                seen.append(ev)
    assert info.value.tool_name == "g"
    assert not any(isinstance(e, ToolCall) for e in seen)
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply.text("a", usage=UsageStep(11, 7), usage_after_finish=True), (11, 7, 0, "provider")),
        (Reply.text("a", usage=UsageStep(11, 7), usage_after_finish=False), (11, 7, 0, "provider")),
        (Reply(steps=(UsageStep(12, 3), Text("a"), FinishStep("stop"))), (12, 3, 0, "provider")),
        (Reply.text("a", usage=UsageStep(20, 2, cached_tokens=15)), (20, 2, 15, "provider")),
        (
            Reply.text("a", usage=UsageStep(20, 2, cache_read_input_tokens=9)),
            (20, 2, 9, "provider"),
        ),
    ],
    ids=["after-finish", "on-finish", "before-content", "cached-details", "cache-read"],
)
async def test_usage_variants(
    pipe: Pipeline,
    fake: FakeProvider,
    request_to,
    reply: Reply,
    expected: tuple[int, int, int, str],
) -> None:  # type: ignore[no-untyped-def]
    fake.script(reply)
    resp = await pipe.acomplete(request_to())
    u = resp.usage
    assert (u.input_tokens, u.output_tokens, u.cached_tokens, u.source) == expected


async def test_no_usage_from_the_provider_is_labelled_estimated(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.text("Hello there", usage=None))
    resp = await pipe.acomplete(request_to())
    assert resp.usage.source == "estimated"
    assert resp.text == "Hello there"


async def test_empty_stream_raises_empty_response(
    no_retry: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.empty())
    with pytest.raises(EmptyResponse):
        await no_retry.acomplete(request_to())
    assert len(fake.requests) == 1


async def test_length_with_no_content_is_returned_not_raised(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(Reply.empty(finish="length"))
    resp = await pipe.acomplete(request_to(max_tokens=16))
    assert (resp.text, resp.stop_reason) == ("", "length")
    assert fake.requests[0].body["max_tokens"] == 16


async def test_reasoning_content_is_streamed(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    from pipeline.testing import Reasoning

    fake.script(
        Reply(steps=(Reasoning("let me think"), Text("42"), FinishStep("stop"), UsageStep(3, 2)))
    )
    resp = await pipe.acomplete(request_to())
    assert (resp.reasoning, resp.text) == ("let me think", "42")
