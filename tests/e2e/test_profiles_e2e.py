"""Each provider profile, end to end through real litellm to the fake provider."""

import json
from typing import Any

import msgspec
import pytest

from pipeline import Pipeline, ToolSpec
from pipeline.events import Event, Finish, ReasoningDelta, TextDelta, ToolCall
from pipeline.testing import (
    FakeClock,
    FakeProvider,
    FinishStep,
    Reasoning,
    Reply,
    Text,
    ToolDelta,
    UsageStep,
)


async def events_of(p: Pipeline, req: Any) -> list[Event]:
    async with p.stream(req) as events:
        return [ev async for ev in events]


# --- Anthropic format -----------------------------------------------------------------------


async def test_anthropic_oauth_token_goes_only_as_bearer(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    token = "sk-ant-oat01-test-oauth-token"
    fake.script(Reply.text("Hello", " from Claude", usage=UsageStep(19, 6)))
    resp = await pipe.acomplete(
        request_to(
            model="anthropic/claude-test",
            api_base=fake.root_url,
            api_key=token,
            system="You are helpful.",
        )
    )
    assert resp.text == "Hello from Claude"
    sent = fake.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["authorization"] == f"Bearer {token}"
    assert "x-api-key" not in sent.headers
    # cache-control on the system block, in Anthropic's format
    assert sent.body["system"] == [
        {"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}}
    ]
    assert "stream_options" not in sent.body


async def test_anthropic_api_key_goes_as_x_api_key(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply.text("ok"))
    await pipe.acomplete(
        request_to(
            model="anthropic/claude-test", api_base=fake.root_url, api_key="sk-ant-api03-regular"
        )
    )
    assert fake.requests[0].headers["x-api-key"] == "sk-ant-api03-regular"


async def test_anthropic_thinking_streams_as_reasoning(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(
        Reply(
            steps=(
                Reasoning("Let me think. "),
                Reasoning("Done."),
                Text("42"),
                FinishStep("stop"),
                UsageStep(12, 8),
            )
        )
    )
    events = await events_of(
        pipe, request_to(model="anthropic/claude-test", api_base=fake.root_url)
    )
    assert "".join(e.text for e in events if isinstance(e, ReasoningDelta)) == "Let me think. Done."
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["42"]


async def test_anthropic_tool_calls_and_cached_usage(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(
        Reply(
            steps=(
                ToolDelta(id="toolu_1", name="search", arguments='{"q": '),
                ToolDelta(index=None, arguments='"llmpipe"}'),
                FinishStep("tool_calls"),
                UsageStep(30, 9, cache_read_input_tokens=20),
            )
        )
    )
    resp = await pipe.acomplete(
        request_to(
            model="anthropic/claude-test", api_base=fake.root_url, tools=[{"name": "search"}]
        )
    )
    assert resp.tool_calls == (ToolCall(id="toolu_1", name="search", arguments={"q": "llmpipe"}),)
    assert resp.stop_reason == "tool_calls"
    assert resp.usage.cached_tokens == 20
    assert resp.usage.source == "provider"


# --- Kimi -------------------------------------------------------------------------------------


async def test_kimi_goes_out_as_anthropic_and_loses_the_v1_suffix(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply.text("moshi moshi"))
    resp = await pipe.acomplete(
        request_to(model="kimi/kimi-k2-coder", api_base=fake.root_url + "/v1", system="sys")
    )
    assert resp.text == "moshi moshi"
    sent = fake.requests[0]
    assert sent.path == "/v1/messages"  # not /v1/v1/messages
    assert sent.body["model"] == "kimi-k2-coder"
    assert sent.body["system"][0]["cache_control"] == {"type": "ephemeral"}


# --- MiniMax: not streamed, played back as a stream --------------------------------------------


def minimax_reply() -> Reply:
    return Reply(
        steps=(
            Text("hello "),
            Text("from minimax"),
            ToolDelta(index=0, id="call_mm", name="lookup", arguments='{"k": 1}'),
            FinishStep("tool_calls"),
            UsageStep(7, 4),
        )
    )


async def test_minimax_is_dispatched_without_streaming_and_looks_streamed(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(minimax_reply(), minimax_reply())
    tools = [{"name": "lookup"}]
    simulated = await pipe.acomplete(
        request_to(model="minimax/MiniMax-M2", tools=tools, system="sys")
    )
    streamed = await pipe.acomplete(
        request_to(model="openai/MiniMax-M2", tools=tools, system="sys")
    )
    assert fake.requests[0].body.get("stream") in (None, False)
    assert fake.requests[1].body["stream"] is True
    assert fake.requests[0].body["messages"][0]["cache_control"] == {"type": "ephemeral"}
    for field in ("text", "tool_calls", "stop_reason"):
        assert getattr(simulated, field) == getattr(streamed, field), field
    # the same tokens; only MiniMax's own model string has a price in the table
    assert msgspec.structs.replace(simulated.usage, cost_usd=None) == streamed.usage
    assert simulated.usage.cost_usd == pytest.approx(7 * 3e-07 + 4 * 1.2e-06)
    assert streamed.usage.cost_usd is None
    assert simulated.text == "hello from minimax"
    assert simulated.usage.input_tokens == 7


async def test_minimax_events_match_the_stream_contract(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(minimax_reply())
    events = await events_of(
        pipe, request_to(model="minimax/MiniMax-M2", tools=[{"name": "lookup"}])
    )
    assert [type(e).__name__ for e in events] == ["TextDelta", "TextEnd", "ToolCall", "Finish"]
    assert events[-1] == Finish(
        stop_reason="tool_calls",
        input_tokens=7,
        output_tokens=4,
        model="MiniMax-M2",
        usage_source="provider",
        cost_usd=pytest.approx(7 * 3e-07 + 4 * 1.2e-06),  # LiteLLM's table: $0.30 / $1.20 per M
    )


# --- Codex backend ------------------------------------------------------------------------------


async def test_codex_backend_request_shape(pipe: Pipeline, fake: FakeProvider, request_to) -> None:
    fake.script(Reply.text("codex ok"))
    base = fake.root_url + "/chatgpt.com/backend-api/codex"
    resp = await pipe.acomplete(
        request_to(model="openai/codex-test", api_base=base, max_tokens=512)
    )
    assert resp.text == "codex ok"
    body = fake.requests[0].body
    assert body["stream"] is True
    assert "max_tokens" not in body
    assert "stream_options" not in body
    assert body["store"] is False
    assert body["messages"][0] == {"role": "system", "content": "You are a helpful assistant."}


async def test_codex_complete_works_inside_a_running_loop(
    clock: FakeClock, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply.text("codex ", "sync"))
    p = Pipeline.default(sleep=clock.sleep, clock=clock.time)
    resp = p.complete(
        request_to(
            model="openai/codex-test", api_base=fake.root_url + "/chatgpt.com/backend-api/codex"
        )
    )
    assert resp.text == "codex sync"


# --- OpenRouter tool compatibility ------------------------------------------------------------

OR_MODEL = "openrouter/liquid/lfm-2.5-1.2b-thinking:free"
NO_TOOLS = Reply.error(
    404,
    "No endpoints found that support tool use. To learn more about provider routing, visit: "
    "https://openrouter.ai/docs/guides/routing/provider-selection",
)
WEB_SEARCH = ToolSpec(
    name="web_search",
    description="Search the web",
    parameters={
        "properties": {"query": {"type": "string"}, "num_results": {"type": "integer"}},
        "required": ["query"],
    },
)


def compat_answer(content: str, usage: UsageStep) -> Reply:
    return Reply.text(content, usage=usage)


async def test_openrouter_falls_back_to_json_tool_emulation(
    pipe: Pipeline, fake: FakeProvider, request_to
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
    fake.script(NO_TOOLS, compat_answer(content, UsageStep(18, 9)))
    req = request_to(
        model=OR_MODEL,
        messages=[{"role": "user", "content": "Search for the Python 3.13 release notes."}],
        system="Use tools when needed.",
        tools=[WEB_SEARCH],
        max_tokens=256,
    )
    events = await events_of(pipe, req)
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert len(calls) == 1
    assert (calls[0].name, calls[0].arguments) == (
        "web_search",
        {"query": "Python 3.13 release notes", "num_results": 3},
    )
    assert calls[0].id.startswith("openrouter_compat_")
    finishes = [e for e in events if isinstance(e, Finish)]
    assert [(f.stop_reason, f.input_tokens, f.output_tokens) for f in finishes] == [
        ("tool_calls", 18, 9)
    ]
    assert len(fake.requests) == 2
    first, second = (r.body for r in fake.requests)
    assert first["stream"] is True and first["tools"]
    assert "tools" not in second
    assert "Tool compatibility mode is active" in second["messages"][0]["content"]
    assert second["messages"][0]["content"].startswith("Use tools when needed.")


async def test_openrouter_textual_markers_and_the_model_is_remembered(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    tool = ToolSpec(
        name="ask_user_multiple",
        parameters={
            "properties": {
                "options": {"type": "array"},
                "question": {"type": "string"},
                "prompt": {"type": "string"},
            }
        },
    )
    content = "<|tool_call_start|>[ask_user_multiple(options=['Quartet Collaborator', 'Project Advisor'], question='Who are you?', prompt='Who are you?')]<|tool_call_end|>"
    fake.script(
        NO_TOOLS, compat_answer(content, UsageStep(10, 5)), compat_answer(content, UsageStep(10, 5))
    )
    req = request_to(model=OR_MODEL, tools=[tool], max_tokens=128)
    expected = {
        "options": ["Quartet Collaborator", "Project Advisor"],
        "question": "Who are you?",
        "prompt": "Who are you?",
    }
    for _ in range(2):
        calls = [e for e in await events_of(pipe, req) if isinstance(e, ToolCall)]
        assert [c.arguments for c in calls] == [expected]
    assert len(fake.requests) == 3
    assert ["tools" in r.body for r in fake.requests] == [True, False, False]


async def test_openrouter_plain_text_tool_call_lines(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    tool = ToolSpec(
        name="ask_user",
        parameters={"properties": {"question": {"type": "string"}, "options": {"type": "array"}}},
    )
    content = (
        "Queen has been loaded. It's ready to assist with your planning needs.\n\n"
        "ask_user('What would you like to do?', ['Define a new agent', 'Diagnose an existing agent', 'Explore tools'])"
    )
    fake.script(NO_TOOLS, compat_answer(content, UsageStep(11, 7)))
    events = await events_of(pipe, request_to(model=OR_MODEL, tools=[tool]))
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "Queen has been loaded. It's ready to assist with your planning needs."
    ]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.arguments) for c in calls] == [
        (
            "ask_user",
            {
                "question": "What would you like to do?",
                "options": ["Define a new agent", "Diagnose an existing agent", "Explore tools"],
            },
        )
    ]
    assert events[-1].stop_reason == "tool_calls"  # type: ignore[union-attr]


async def test_openrouter_non_json_answer_is_plain_text(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(NO_TOOLS, compat_answer("I can answer directly without tools.", UsageStep(12, 6)))
    events = await events_of(
        pipe, request_to(model=OR_MODEL, tools=[WEB_SEARCH], system="Be concise.")
    )
    assert [e.text for e in events if isinstance(e, TextDelta)] == [
        "I can answer directly without tools."
    ]
    assert not any(isinstance(e, ToolCall) for e in events)
    assert events[-1].stop_reason == "stop"  # type: ignore[union-attr]


async def test_other_openrouter_errors_are_not_compat_mode(
    no_retry: Pipeline, fake: FakeProvider, request_to
) -> None:
    from pipeline.errors import ModelNotFound

    fake.script(Reply.error(404, "model not found"))
    with pytest.raises(ModelNotFound):
        await no_retry.acomplete(request_to(model=OR_MODEL, tools=[WEB_SEARCH]))
    assert len(fake.requests) == 1


async def test_openrouter_default_base_and_cache_routes(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply.text("ok"))
    await pipe.acomplete(request_to(model="openrouter/anthropic/claude-sonnet-4", system="sys"))
    system = fake.requests[0].body["messages"][0]
    # litellm moves it onto the content block for OpenRouter
    assert system["content"] == [
        {"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}
    ]


# --- OpenAI-compatible servers (vLLM, llama.cpp, Ollama's /v1, LM Studio) --------------------


@pytest.mark.parametrize(
    "model", ["any-model", "meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct"]
)
async def test_a_bare_model_with_a_base_is_an_openai_compatible_server(
    pipe: Pipeline, fake: FakeProvider, request_to, monkeypatch: pytest.MonkeyPatch, model: str
) -> None:
    # no provider prefix, no key anywhere: what a local server needs
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    fake.script(Reply.text("local", " answer"), Reply.text("again"))
    for expected in ("local answer", "again"):  # and a second time, in the same pipeline
        resp = await pipe.acomplete(request_to(model=model, api_key=None))
        assert resp.text == expected
    for sent in fake.requests:
        assert sent.path == "/v1/chat/completions"
        assert sent.body["model"] == model  # the name as given, no openai/ prefix
        assert sent.headers["authorization"] == "Bearer no-key"  # a placeholder, plainly


async def test_a_bare_model_uses_the_key_given_or_openai_api_key(
    pipe: Pipeline, fake: FakeProvider, request_to, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.script(Reply.text("a"), Reply.text("b"))
    await pipe.acomplete(request_to(model="any-model", api_key="sk-local-server-key"))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    await pipe.acomplete(request_to(model="any-model", api_key=None))  # as the openai SDK does
    assert [r.headers["authorization"] for r in fake.requests] == [
        "Bearer sk-local-server-key",
        "Bearer sk-from-the-environment",
    ]


async def test_a_model_naming_a_litellm_provider_keeps_its_route(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    # openai/ (and anthropic/, gemini/, ...) mean what litellm says, base or not
    fake.script(Reply.text("ok"))
    await pipe.acomplete(request_to(model="openai/gpt-4o-mini"))
    assert fake.requests[0].body["model"] == "gpt-4o-mini"
    assert fake.requests[0].headers["authorization"] == "Bearer sk-test-key-not-real"
