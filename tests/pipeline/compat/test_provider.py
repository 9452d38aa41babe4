"""The provider's construction (the reference's per-provider defaults) and its calls
over a scripted dispatch (failures the fake provider cannot produce at HTTP level)."""

import asyncio
import os
from typing import Any

import pytest

from pipeline import Pipeline, testing
from pipeline.compat import (
    FinishEvent,
    LiteLLMProvider,
    StreamErrorEvent,
    TextDeltaEvent,
    Tool,
)
from pipeline.errors import InvalidRequest, RateLimited
from pipeline.testing import FakeClock

HI = [{"role": "user", "content": "hi"}]


# --- construction ----------------------------------------------------------------------------


def test_defaults() -> None:
    p = LiteLLMProvider()
    assert (p.model, p.api_key, p.api_base, p.extra_kwargs) == ("gpt-4o-mini", None, None, {})


@pytest.mark.parametrize("model", ["claude-3-haiku-20240307", "deepseek/deepseek-chat"])
def test_models_are_kept(model: str) -> None:
    assert LiteLLMProvider(model=model).model == model


def test_key_and_base_are_kept() -> None:
    p = LiteLLMProvider(api_key="my-api-key", api_base="https://my-proxy.com/v1")
    assert (p.api_key, p.api_base) == ("my-api-key", "https://my-proxy.com/v1")


@pytest.mark.parametrize(
    ("model", "base"),
    [
        ("minimax/MiniMax-M2.1", "https://api.minimax.io/v1"),
        ("MiniMax-M2.1", "https://api.minimax.io/v1"),  # prefixes match in any case
        ("minimax-text-01", "https://api.minimax.io/v1"),
        ("gpt-4o-mini", None),
        ("openrouter/x-ai/grok-4.20-beta", "https://openrouter.ai/api/v1"),
        ("kimi/kimi-k2", "https://api.kimi.com/coding"),
    ],
)
def test_default_bases_per_provider(model: str, base: str | None) -> None:
    assert LiteLLMProvider(model=model, api_key="my-key").api_base == base


@pytest.mark.parametrize("model", ["minimax/MiniMax-M2.1", "openrouter/x-ai/grok-4.20-beta"])
def test_a_given_base_wins(model: str) -> None:
    assert LiteLLMProvider(model=model, api_base="https://proxy.example/v1").api_base == (
        "https://proxy.example/v1"
    )


def test_kimi_goes_as_anthropic_and_its_base_loses_v1() -> None:
    p = LiteLLMProvider(model="kimi/kimi-k2", api_base="https://api.kimi.com/coding/v1/")
    assert (p.model, p.api_base) == ("anthropic/kimi-k2", "https://api.kimi.com/coding")


def test_ollama_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        monkeypatch.delenv(name)
    p = LiteLLMProvider(model="ollama/llama3")
    # as the reference reads it (its own init test); litellm's chat endpoint is
    # the litellm backend's routing, not the provider's model
    assert (p.model, p.api_key) == ("ollama/llama3", None)


def test_no_key_is_validated_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert LiteLLMProvider(model="openai/gpt-4o").api_key is None


def test_minimax_and_codex_detection() -> None:
    assert LiteLLMProvider(model="minimax-text-01")._is_minimax_model()
    assert LiteLLMProvider(model="minimax/minimax-text-01")._is_minimax_model()
    assert not LiteLLMProvider(model="gpt-4o-mini")._is_minimax_model()
    codex = LiteLLMProvider(api_base="https://chatgpt.com/backend-api/codex")
    assert codex._codex_backend and not LiteLLMProvider()._codex_backend


@pytest.mark.parametrize("key", ["messages", "stream", "stream_options"])
def test_keywords_that_cannot_go_to_every_call_are_refused(key: str) -> None:
    with pytest.raises(InvalidRequest, match=key):
        LiteLLMProvider(**{key: True})


def test_the_key_never_shows_in_repr() -> None:
    p = LiteLLMProvider(api_key="sk-secret-key-123456")
    assert "sk-secret" not in repr(p) and "'***'" in repr(p)


# --- calls over a scripted dispatch ------------------------------------------------------------


def scripted(clock: FakeClock, *scripts: list[Any]) -> tuple[LiteLLMProvider, Any]:
    dispatch = testing.scripted(scripts)
    pipe = Pipeline.default(sleep=clock.sleep, clock=clock.time).replace("dispatch", dispatch)
    return LiteLLMProvider("openai/test", pipeline=pipe), dispatch


async def collect(stream: Any) -> list[Any]:
    return [ev async for ev in stream]


async def test_a_rate_limit_after_streamed_text_does_not_duplicate() -> None:
    clock = FakeClock()
    provider, dispatch = scripted(
        clock,
        ["Hello ", "world", RateLimited("429 rate limited", status_code=429)],
        testing.text_chunks("Hello world"),
    )
    events = await collect(provider.stream(HI, max_tokens=64))
    assert len(dispatch.calls) == 1
    assert "".join(e.content for e in events if isinstance(e, TextDeltaEvent)) == "Hello world"
    errors = [e for e in events if isinstance(e, StreamErrorEvent)]
    assert len(errors) == 1 and errors[0].recoverable is True
    assert events[-1] is errors[0]
    assert clock.sleeps == []


async def test_no_duplicate_deltas_across_many_chunks() -> None:
    tokens = [f"t{i} " for i in range(50)]
    provider, dispatch = scripted(FakeClock(), [*tokens, RateLimited("429", status_code=429)])
    events = await collect(provider.stream(HI))
    assert [e.content for e in events if isinstance(e, TextDeltaEvent)] == tokens
    assert [type(e) for e in events].count(StreamErrorEvent) == 1
    assert len(dispatch.calls) == 1


async def test_bad_input_is_an_error_event_and_nothing_is_sent() -> None:
    provider, dispatch = scripted(FakeClock())
    events = await collect(provider.stream([{"role": "robot", "content": "hi"}]))
    assert len(events) == 1 and isinstance(events[0], StreamErrorEvent)
    assert "messages[0].role" in events[0].error and events[0].recoverable is False
    assert dispatch.calls == []


async def test_bad_input_raises_from_complete() -> None:
    provider, dispatch = scripted(FakeClock())
    with pytest.raises(InvalidRequest, match=r"messages\[0\]\.role"):
        await provider.acomplete([{"role": "robot", "content": "hi"}])
    with pytest.raises(InvalidRequest, match="max_retries"):
        await provider.acomplete(HI, max_retries=-1)
    assert dispatch.calls == []


async def test_max_retries_caps_empty_answer_retries() -> None:
    clock = FakeClock()
    empty = testing.text_chunks()
    provider, dispatch = scripted(clock, empty, empty, testing.text_chunks("finally"))
    resp = await provider.acomplete(HI, max_retries=2)
    assert resp.content == "finally"
    assert len(dispatch.calls) == 3
    assert clock.sleeps == [1.0, 1.0]


async def test_an_exhausted_empty_answer_is_a_recoverable_error_event() -> None:
    empty = testing.text_chunks()
    provider, dispatch = scripted(FakeClock(), empty, empty, empty, empty)
    events = await collect(provider.stream(HI))
    assert len(dispatch.calls) == 4  # the default budget: 3 retries
    assert len(events) == 1 and isinstance(events[0], StreamErrorEvent)
    assert events[0].recoverable is True and "no text and no tool call" in events[0].error


async def test_length_with_no_output_is_a_finish_not_an_error() -> None:
    provider, _ = scripted(FakeClock(), testing.text_chunks(finish="length"))
    events = await collect(provider.stream(HI))
    assert events == [
        FinishEvent(stop_reason="length", input_tokens=10, output_tokens=5, model="openai/test")
    ]


async def test_calls_from_several_loops_and_threads_share_one_provider() -> None:
    scripts = [testing.text_chunks(f"answer {i}") for i in range(4)]
    provider, _ = scripted(FakeClock(), *scripts)
    first = await provider.acomplete(HI)
    second = await asyncio.to_thread(provider.complete, HI)
    third = provider.complete(HI)  # inside this running loop: on a worker thread
    fourth = [e async for e in provider.stream(HI) if isinstance(e, TextDeltaEvent)]
    assert [first.content, second.content, third.content, fourth[0].content] == [
        "answer 0",
        "answer 1",
        "answer 2",
        "answer 3",
    ]


async def test_constructor_defaults_for_format_tools_and_retries() -> None:
    clock = FakeClock()
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {}}}
    dispatch = testing.scripted([testing.text_chunks("a"), testing.text_chunks("b")])
    pipe = Pipeline.default(sleep=clock.sleep, clock=clock.time).replace("dispatch", dispatch)
    provider = LiteLLMProvider(
        "openai/test",
        pipeline=pipe,
        response_format={"type": "json_object"},
        tools=[tool],
        num_retries=0,
        seed=7,
    )
    await provider.acomplete(HI)
    await provider.acomplete(HI, response_format={"type": "text"}, tools=[Tool("other", "")])
    first, second = dispatch.calls
    assert first.response_format == {"type": "json_object"}
    assert [t.name for t in first.tools or ()] == ["lookup"]
    assert second.response_format == {"type": "text"}
    assert [t.name for t in second.tools or ()] == ["other"]
    assert first.extra == {"seed": 7}  # the retry keywords are not passed on
    assert provider._pipeline_for(None).policy.rate_limit_retries == 0
