"""The reference provider's behaviours through the compat adapter: real litellm, real HTTP.

Where the reference's own tests patched ``litellm.completion``, these send
the call to the loopback fake provider and look at what it received.
"""

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from pipeline import Pipeline
from pipeline.compat import (
    FinishEvent,
    LiteLLMProvider,
    ReasoningDeltaEvent,
    ReasoningStartEvent,
    StreamErrorEvent,
    TextDeltaEvent,
    TextEndEvent,
    Tool,
    ToolCallEvent,
)
from pipeline.errors import RateLimited, RetriesExhausted
from pipeline.policy import RetryPolicy
from pipeline.testing import (
    Drop,
    FakeClock,
    FakeProvider,
    FinishStep,
    Reasoning,
    Reply,
    Stall,
    Text,
    ToolDelta,
    UsageStep,
)

KEY = "sk-test-key-not-real-0123"
HELLO = [{"role": "user", "content": "Hello"}]
JSON_INSTRUCTION = "Please respond with a valid JSON object"


def provider(
    fake: FakeProvider, clock: FakeClock, model: str = "gpt-4o-mini", **kwargs: Any
) -> LiteLLMProvider:
    pipe = Pipeline.default(sleep=clock.sleep, clock=clock.time, policy=kwargs.pop("policy", None))
    return LiteLLMProvider(model, api_key=KEY, api_base=fake.base_url, pipeline=pipe, **kwargs)


async def collect(stream: Any) -> list[Any]:
    return [ev async for ev in stream]


def sent(fake: FakeProvider, i: int = 0) -> dict[str, Any]:
    body: dict[str, Any] = fake.requests[i].body
    return body


# --- complete / acomplete ---------------------------------------------------------------------


async def test_complete_basic(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.text("Hello! I'm an AI assistant.", usage=UsageStep(10, 20)))
    resp = provider(fake, clock).complete(messages=HELLO)
    assert (resp.content, resp.model, resp.input_tokens, resp.output_tokens, resp.stop_reason) == (
        "Hello! I'm an AI assistant.",
        "gpt-4o-mini",
        10,
        20,
        "stop",
    )
    assert len(fake.requests) == 1
    assert sent(fake)["model"] == "gpt-4o-mini"
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"


async def test_system_prompt_comes_first_without_cache_control(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply.text("ok"))
    provider(fake, clock).complete(messages=HELLO, system="You are a helpful assistant.")
    assert sent(fake)["messages"][0] == {
        "role": "system",
        "content": "You are a helpful assistant.",
    }


async def test_tools_go_out_in_the_openai_format(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.tool_calls(("call_1", "get_weather", {"location": "Paris"})))
    weather = Tool(
        "get_weather",
        "Get the weather for a location",
        {
            "properties": {"location": {"type": "string", "description": "City name"}},
            "required": ["location"],
        },
    )
    resp = await provider(fake, clock).acomplete(messages=HELLO, tools=[weather])
    tool = sent(fake)["tools"][0]
    assert tool["type"] == "function"
    assert tool["function"]["name"] == "get_weather"
    assert tool["function"]["parameters"]["required"] == ["location"]
    assert resp.stop_reason == "tool_calls"
    calls = resp.raw_response.tool_calls
    assert [(c.id, c.name, c.arguments) for c in calls] == [
        ("call_1", "get_weather", {"location": "Paris"})
    ]


async def test_constructor_kwargs_go_to_every_call(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.text("a"), Reply.text("b"))
    p = provider(fake, clock, temperature=0.2, top_p=0.5, max_tokens=77)
    await p.acomplete(messages=HELLO)
    await collect(p.stream(messages=HELLO))
    for i in range(2):
        body = sent(fake, i)
        assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.2, 0.5, 77)
    assert p.extra_kwargs == {"temperature": 0.2, "top_p": 0.5, "max_tokens": 77}


async def test_response_format_is_forwarded(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.text("{}"))
    await provider(fake, clock).acomplete(messages=HELLO, response_format={"type": "json_object"})
    assert sent(fake)["response_format"] == {"type": "json_object"}


@pytest.mark.parametrize(
    ("system", "json_mode", "expected_system"),
    [
        ("You are helpful.", True, "You are helpful.\n\nPlease respond with a valid JSON object."),
        ("", True, "Please respond with a valid JSON object."),
        ("You are helpful.", False, "You are helpful."),
        ("You are helpful.", None, "You are helpful."),  # json_mode not given
    ],
    ids=["appended", "created", "off", "default-off"],
)
async def test_json_mode_is_an_instruction_in_the_system_prompt(
    fake: FakeProvider,
    clock: FakeClock,
    system: str,
    json_mode: bool | None,
    expected_system: str,
) -> None:
    fake.script(Reply.text("{}"), Reply.text("{}"))
    p = provider(fake, clock)
    options = {} if json_mode is None else {"json_mode": json_mode}
    p.complete(messages=HELLO, system=system, **options)
    await collect(p.stream(messages=HELLO, system=system, **options))
    for i in range(2):
        body = sent(fake, i)
        assert "response_format" not in body
        assert body["messages"][0] == {"role": "system", "content": expected_system}


async def test_acomplete_maps_the_answer(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.text("async ", "hello", usage=UsageStep(10, 5)))
    resp = await provider(fake, clock).acomplete(messages=HELLO, system="You are helpful.")
    assert (resp.content, resp.model, resp.input_tokens, resp.output_tokens) == (
        "async hello",
        "gpt-4o-mini",
        10,
        5,
    )
    assert len(fake.requests) == 1


async def test_acomplete_does_not_block_the_event_loop(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply.text("done"))
    p = provider(fake, clock)
    finished = False
    ticks_in_flight = 0

    async def call() -> Any:
        nonlocal finished
        try:
            return await p.acomplete(messages=HELLO)
        finally:
            finished = True

    async def heartbeat() -> None:
        nonlocal ticks_in_flight
        while not finished:
            if fake.requests:  # the server has the request; the answer is not back yet
                ticks_in_flight += 1
            await asyncio.sleep(0)

    resp, _ = await asyncio.gather(call(), heartbeat())
    assert resp.content == "done"
    assert ticks_in_flight >= 1  # another coroutine ran while the call was in flight


async def test_complete_works_inside_a_running_loop(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.text("from ", "a loop"))
    assert provider(fake, clock).complete(messages=HELLO).content == "from a loop"
    assert asyncio.get_running_loop().is_running()


# --- retries ------------------------------------------------------------------------------------


def slow_down(_: object) -> Reply:
    return Reply.error(429, "Rate limit reached", headers={"retry-after": "1"})


@pytest.mark.parametrize("budget", [0, 2])
async def test_max_retries_is_honoured(fake: FakeProvider, clock: FakeClock, budget: int) -> None:
    fake.respond_with(slow_down)
    with pytest.raises((RateLimited, RetriesExhausted)):
        await provider(fake, clock).acomplete(messages=HELLO, max_retries=budget)
    assert len(fake.requests) == budget + 1
    assert clock.sleeps == [1.0] * budget


async def test_a_constructor_max_retries_is_the_default(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(slow_down)
    events = await collect(provider(fake, clock, max_retries=1).stream(messages=HELLO))
    assert len(fake.requests) == 2
    [error] = events
    assert isinstance(error, StreamErrorEvent) and error.recoverable is True
    assert "429" in error.error or "rate" in error.error.lower()


async def test_a_permanent_error_is_not_recoverable_and_hides_the_key(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply.error(401, f"Incorrect API key provided: {KEY}"))
    events = await collect(provider(fake, clock).stream(messages=HELLO))
    [error] = events
    assert isinstance(error, StreamErrorEvent) and error.recoverable is False
    assert error.error.startswith("AuthenticationFailed")
    assert KEY not in error.error
    assert len(fake.requests) == 1


async def test_unparseable_tool_arguments_end_the_stream_as_the_reference_said(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(
        Reply(
            steps=(ToolDelta(0, "call_1", "ask_user", '{"question": foo'), FinishStep("tool_calls"))
        )
    )
    events = await collect(
        provider(fake, clock).stream(messages=HELLO, tools=[Tool("ask_user", "")])
    )
    [error] = events
    assert isinstance(error, StreamErrorEvent) and error.recoverable is False
    assert error.error.startswith("Failed to parse tool call arguments for 'ask_user'")
    assert len(fake.requests) == 1


async def test_a_failed_dump_never_raises(
    fake: FakeProvider, clock: FakeClock, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    fake.script(Reply.error(429, "slow down", headers={"retry-after": "0"}), Reply.text("fine"))
    p = provider(fake, clock, policy=RetryPolicy(dump_dir=blocker / "dumps"))
    assert (await p.acomplete(messages=HELLO)).content == "fine"
    assert len(fake.requests) == 2


# --- stream ---------------------------------------------------------------------------------------


async def test_stream_events_in_the_reference_order(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(
        Reply(
            steps=(
                Text("Let me "),
                Text("search."),
                ToolDelta(0, "call_1", "search", '{"q": '),
                ToolDelta(0, arguments='"x"}'),
                FinishStep("tool_calls"),
                UsageStep(10, 5),
            )
        )
    )
    events = await collect(provider(fake, clock).stream(messages=HELLO, tools=[Tool("search", "")]))
    assert events == [
        TextDeltaEvent(content="Let me ", snapshot="Let me "),
        TextDeltaEvent(content="search.", snapshot="Let me search."),
        ToolCallEvent(tool_use_id="call_1", tool_name="search", tool_input={"q": "x"}),
        TextEndEvent(full_text="Let me search."),
        FinishEvent(
            stop_reason="tool_calls", input_tokens=10, output_tokens=5, model="gpt-4o-mini"
        ),
    ]


async def test_reasoning_events_come_before_the_text(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(
        Reply(
            steps=(Reasoning("Let me think. "), Reasoning("Done."), Text("42"), FinishStep("stop"))
        )
    )
    events = await collect(provider(fake, clock).stream(messages=HELLO))
    assert events[:4] == [
        ReasoningStartEvent(),
        ReasoningDeltaEvent(content="Let me think. "),
        ReasoningDeltaEvent(content="Done."),
        TextDeltaEvent(content="42", snapshot="42"),
    ]
    assert [type(e) for e in events[4:]] == [TextEndEvent, FinishEvent]


async def test_usage_after_the_finish_chunk_is_counted(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply.text("Hi", usage=UsageStep(10, 5, cached_tokens=4), usage_after_finish=True))
    events = await collect(provider(fake, clock).stream(messages=HELLO))
    assert events[-1] == FinishEvent(
        stop_reason="stop", input_tokens=10, output_tokens=5, cached_tokens=4, model="gpt-4o-mini"
    )


async def test_a_drop_after_text_is_one_recoverable_error_and_no_duplicate(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply(steps=(Text("Hello "), Text("world"), Drop())), Reply.text("Hello world"))
    events = await collect(provider(fake, clock).stream(messages=HELLO, max_tokens=64))
    assert len(fake.requests) == 1
    assert "".join(e.content for e in events if isinstance(e, TextDeltaEvent)) == "Hello world"
    assert [type(e) for e in events] == [TextDeltaEvent, TextDeltaEvent, StreamErrorEvent]
    assert events[-1].recoverable is True


async def test_many_chunks_then_a_drop(fake: FakeProvider, clock: FakeClock) -> None:
    tokens = [f"t{i} " for i in range(50)]
    fake.script(Reply(steps=(*(Text(t) for t in tokens), Drop())))
    events = await collect(provider(fake, clock).stream(messages=HELLO))
    deltas = [e for e in events if isinstance(e, TextDeltaEvent)]
    assert [d.content for d in deltas] == tokens
    assert [d.snapshot for d in deltas] == ["".join(tokens[: i + 1]) for i in range(50)]
    assert [type(e) for e in events].count(StreamErrorEvent) == 1
    assert len(fake.requests) == 1


async def test_a_drop_before_any_text_is_retried(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply(steps=(Drop(),)), Reply.text("Hello ", "world"))
    events = await collect(provider(fake, clock).stream(messages=HELLO))
    assert len(fake.requests) == 2
    assert "".join(e.content for e in events if isinstance(e, TextDeltaEvent)) == "Hello world"
    assert not any(isinstance(e, StreamErrorEvent) for e in events)


async def test_a_tool_only_stream_that_drops_is_retried(
    fake: FakeProvider, clock: FakeClock
) -> None:
    call = ToolDelta(0, "call_1", "search", '{"q": "x"}')
    fake.script(Reply(steps=(call, Drop())), Reply(steps=(call, FinishStep("tool_calls"))))
    events = await collect(provider(fake, clock).stream(messages=HELLO, tools=[Tool("search", "")]))
    assert len(fake.requests) == 2
    assert not any(isinstance(e, TextDeltaEvent | StreamErrorEvent) for e in events)
    assert [e for e in events if isinstance(e, ToolCallEvent)] == [
        ToolCallEvent(tool_use_id="call_1", tool_name="search", tool_input={"q": "x"})
    ]


async def test_closing_the_stream_early_closes_the_connection(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply(steps=(Text("first "), Text("second "), Stall(None))))
    async with contextlib.aclosing(provider(fake, clock).stream(messages=HELLO)) as events:
        async for ev in events:
            if isinstance(ev, TextDeltaEvent):
                break
    conn = await fake.wait_closed(timeout=1.0)
    assert conn.closed_by == "client"
