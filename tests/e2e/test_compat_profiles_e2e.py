"""The reference's provider-specific behaviours through the compat adapter, end to end:
MiniMax's simulated streaming, OpenRouter's tool-compat fallback, Kimi."""

import json
from typing import Any

from pipeline import Pipeline
from pipeline.compat import (
    FinishEvent,
    LiteLLMProvider,
    TextDeltaEvent,
    TextEndEvent,
    Tool,
    ToolCallEvent,
)
from pipeline.testing import FakeClock, FakeProvider, FinishStep, Reply, Text, ToolDelta, UsageStep
from tests.e2e.test_profiles_e2e import NO_TOOLS, OR_MODEL
from tests.e2e.test_profiles_e2e import WEB_SEARCH as SEARCH_SPEC

HI = [{"role": "user", "content": "hi"}]


def provider(fake: FakeProvider, clock: FakeClock, model: str, base: str = "") -> LiteLLMProvider:
    pipe = Pipeline.default(sleep=clock.sleep, clock=clock.time)
    return LiteLLMProvider(model, api_key="test-key", api_base=base or fake.base_url, pipeline=pipe)


async def collect(stream: Any) -> list[Any]:
    return [ev async for ev in stream]


# --- MiniMax ----------------------------------------------------------------------------------


async def test_minimax_streams_from_one_non_streamed_call(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(Reply.text("hello from ", "minimax", usage=UsageStep(7, 4)))
    p = provider(fake, clock, "minimax/minimax-text-01")
    events = await collect(p.stream(messages=HI))
    assert len(fake.requests) == 1
    assert fake.requests[0].body.get("stream") in (None, False)
    deltas = [e for e in events if isinstance(e, TextDeltaEvent)]
    assert deltas and deltas[-1].snapshot == "hello from minimax"
    finishes = [e for e in events if isinstance(e, FinishEvent)]
    assert finishes == [
        FinishEvent(stop_reason="stop", input_tokens=7, output_tokens=4, model="minimax-text-01")
    ]


async def test_minimax_tool_calls_follow_the_stream_order(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(
        Reply(
            steps=(
                Text("looking"),
                ToolDelta(index=0, id="call_mm", name="lookup", arguments='{"k": 1}'),
                FinishStep("tool_calls"),
                UsageStep(7, 4),
            )
        )
    )
    p = provider(fake, clock, "minimax/minimax-text-01")
    events = await collect(p.stream(messages=HI, tools=[Tool("lookup", "")]))
    assert [type(e) for e in events] == [TextDeltaEvent, ToolCallEvent, TextEndEvent, FinishEvent]
    assert events[1] == ToolCallEvent(
        tool_use_id="call_mm", tool_name="lookup", tool_input={"k": 1}
    )


# --- OpenRouter tool compatibility ------------------------------------------------------------

# the same tool, as the reference's ``Tool``
WEB_SEARCH = Tool(SEARCH_SPEC.name, SEARCH_SPEC.description, SEARCH_SPEC.parameters)


async def test_openrouter_falls_back_to_json_tool_emulation(
    fake: FakeProvider, clock: FakeClock
) -> None:
    content = json.dumps(
        {
            "assistant_response": "",
            "tool_calls": [
                {
                    "name": "web_search",
                    "arguments": {"query": "Python 3.13 release notes", "num_results": 3},
                }
            ],
        }
    )
    fake.script(NO_TOOLS, Reply.text(content, usage=UsageStep(18, 9)))
    events = await collect(
        provider(fake, clock, OR_MODEL).stream(
            messages=[{"role": "user", "content": "Search for the Python 3.13 release notes."}],
            system="Use tools when needed.",
            tools=[WEB_SEARCH],
            max_tokens=256,
        )
    )
    [call] = [e for e in events if isinstance(e, ToolCallEvent)]
    assert (call.tool_name, call.tool_input) == (
        "web_search",
        {"query": "Python 3.13 release notes", "num_results": 3},
    )
    assert call.tool_use_id.startswith("openrouter_compat_")
    [finish] = [e for e in events if isinstance(e, FinishEvent)]
    assert (finish.stop_reason, finish.input_tokens, finish.output_tokens) == ("tool_calls", 18, 9)
    assert len(fake.requests) == 2
    first, second = (r.body for r in fake.requests)
    assert first["stream"] is True and first["tools"]
    assert "tools" not in second
    assert "Tool compatibility mode is active" in second["messages"][0]["content"]


async def test_openrouter_textual_markers_and_the_model_is_remembered(
    fake: FakeProvider, clock: FakeClock
) -> None:
    tool = Tool(
        "ask_user_multiple",
        "",
        {
            "properties": {
                "options": {"type": "array"},
                "question": {"type": "string"},
                "prompt": {"type": "string"},
            }
        },
    )
    content = (
        "<|tool_call_start|>[ask_user_multiple(options=['Quartet Collaborator', "
        "'Project Advisor'], question='Who are you?', prompt='Who are you?')]<|tool_call_end|>"
    )
    answer = Reply.text(content, usage=UsageStep(10, 5))
    fake.script(NO_TOOLS, answer, answer)
    p = provider(fake, clock, OR_MODEL)
    for _ in range(2):
        events = await collect(p.stream(messages=HI, tools=[tool], max_tokens=128))
        assert [e.tool_input for e in events if isinstance(e, ToolCallEvent)] == [
            {
                "options": ["Quartet Collaborator", "Project Advisor"],
                "question": "Who are you?",
                "prompt": "Who are you?",
            }
        ]
    # the second stream() skipped the native attempt: the instance remembers the model
    assert ["tools" in r.body for r in fake.requests] == [True, False, False]


async def test_openrouter_plain_text_tool_call_lines(fake: FakeProvider, clock: FakeClock) -> None:
    tool = Tool(
        "ask_user",
        "",
        {"properties": {"question": {"type": "string"}, "options": {"type": "array"}}},
    )
    content = (
        "Queen has been loaded. It's ready to assist with your planning needs.\n\n"
        "ask_user('What would you like to do?', ['Define a new agent', "
        "'Diagnose an existing agent', 'Explore tools'])"
    )
    fake.script(NO_TOOLS, Reply.text(content, usage=UsageStep(11, 7)))
    events = await collect(provider(fake, clock, OR_MODEL).stream(messages=HI, tools=[tool]))
    [delta] = [e for e in events if isinstance(e, TextDeltaEvent)]
    assert delta.snapshot == "Queen has been loaded. It's ready to assist with your planning needs."
    [call] = [e for e in events if isinstance(e, ToolCallEvent)]
    assert (call.tool_name, call.tool_input) == (
        "ask_user",
        {
            "question": "What would you like to do?",
            "options": ["Define a new agent", "Diagnose an existing agent", "Explore tools"],
        },
    )
    assert events[-1].stop_reason == "tool_calls"


async def test_openrouter_non_json_answer_is_plain_text(
    fake: FakeProvider, clock: FakeClock
) -> None:
    fake.script(
        NO_TOOLS, Reply.text("I can answer directly without tools.", usage=UsageStep(12, 6))
    )
    events = await collect(
        provider(fake, clock, OR_MODEL).stream(
            messages=HI, tools=[WEB_SEARCH], system="Be concise."
        )
    )
    [delta] = [e for e in events if isinstance(e, TextDeltaEvent)]
    assert delta.snapshot == "I can answer directly without tools."
    assert not any(isinstance(e, ToolCallEvent) for e in events)
    assert events[-1].stop_reason == "stop"


# --- Kimi ---------------------------------------------------------------------------------------


async def test_kimi_goes_out_in_anthropic_format(fake: FakeProvider, clock: FakeClock) -> None:
    fake.script(Reply.text("moshi moshi"))
    p = provider(fake, clock, "kimi/kimi-k2-coder", base=fake.root_url + "/v1")
    assert (p.model, p.api_base) == ("anthropic/kimi-k2-coder", fake.root_url)
    resp = await p.acomplete(messages=HI, system="sys")
    assert resp.content == "moshi moshi"
    assert fake.requests[0].path == "/v1/messages"
    assert fake.requests[0].body["model"] == "kimi-k2-coder"
