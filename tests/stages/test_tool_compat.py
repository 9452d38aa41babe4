"""tool_compat with a scripted dispatch: when it switches, what it sends, what it remembers."""

from typing import Any

import pytest

from pipeline import Pipeline, testing
from pipeline.errors import ModelNotFound, StreamInterrupted
from pipeline.events import Chunk, Event, Finish, TextDelta, ToolCall
from pipeline.policy import RetryPolicy
from stages.tool_compat import ModelMemory, compat_request

NO_TOOLS = ModelNotFound(
    "OpenrouterException - No endpoints found that support tool use.", status_code=404
)
TOOL = {"name": "web_search", "parameters": {"properties": {"query": {"type": "string"}}}}
OR_REQ = {
    "model": "openrouter/some/model",
    "messages": [{"role": "user", "content": "find x"}],
    "tools": [TOOL],
    "system": "Be helpful.",
}


def build(*scripts: list[Any]) -> tuple[Pipeline, testing.ScriptedDispatch]:
    dispatch = testing.scripted(scripts)
    policy = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
    return Pipeline.default(policy=policy).replace("dispatch", dispatch), dispatch


async def drain(p: Pipeline, req: dict[str, Any]) -> list[Event]:
    async with p.stream(req) as events:
        return [ev async for ev in events]


async def test_switches_to_compat_mode_and_remembers_the_model() -> None:
    answer = '{"assistant_response": "", "tool_calls": [{"name": "web_search", "arguments": {"query": "x"}}]}'
    p, dispatch = build([NO_TOOLS], testing.text_chunks(answer), testing.text_chunks(answer))
    for _ in range(2):
        events = await drain(p, OR_REQ)
        assert [(e.name, e.arguments) for e in events if isinstance(e, ToolCall)] == [
            ("web_search", {"query": "x"})
        ]
        assert [e.stop_reason for e in events if isinstance(e, Finish)] == ["tool_calls"]
    assert [c.tools is not None for c in dispatch.calls] == [True, False, False]


async def test_a_fresh_pipeline_forgets() -> None:
    answer = '{"assistant_response": "hi", "tool_calls": []}'
    p, _ = build([NO_TOOLS], testing.text_chunks(answer))
    assert [e.text for e in await drain(p, OR_REQ) if isinstance(e, TextDelta)] == ["hi"]
    p2, dispatch2 = build(testing.text_chunks("native"))
    await drain(p2, OR_REQ)
    assert dispatch2.calls[0].tools is not None


@pytest.mark.parametrize(
    "req",
    [
        {**OR_REQ, "model": "openai/gpt-4o"},  # not a tool-compat provider
        {k: v for k, v in OR_REQ.items() if k != "tools"},  # no tools
    ],
    ids=["other-provider", "no-tools"],
)
async def test_otherwise_the_error_is_raised_as_is(req: dict[str, Any]) -> None:
    p, dispatch = build([NO_TOOLS])
    with pytest.raises(ModelNotFound):
        await drain(p, req)
    assert len(dispatch.calls) == 1


async def test_a_failure_after_chunks_is_not_a_tool_problem() -> None:
    p, dispatch = build([Chunk(text="partial"), NO_TOOLS])
    with pytest.raises(StreamInterrupted) as info:  # after content, every failure is one
        await drain(p, OR_REQ)
    assert isinstance(info.value.__cause__, ModelNotFound)
    assert info.value.partial_text == "partial"
    assert len(dispatch.calls) == 1


def test_the_compat_request_has_no_tools_and_explains_the_protocol() -> None:
    from pipeline.request import Request
    from stages.normalize import normalize_request

    req = normalize_request(Request(**OR_REQ))
    compat = compat_request(req)
    assert compat.tools is None
    system = compat.messages[0]["content"]
    assert system.startswith("Be helpful.\n\nTool compatibility mode is active")
    assert '"name": "web_search"' in system
    assert compat.messages[1:] == req.messages[1:]


def test_memory_is_bounded() -> None:
    memory = ModelMemory(limit=2)
    for model in ("a", "b", "c"):
        memory.add(model)
    assert ("a" in memory, "b" in memory, "c" in memory) == (False, True, True)
