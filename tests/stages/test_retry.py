"""The retry segment with a scripted dispatch on virtual time."""

import asyncio
import logging
from typing import Any

import pytest

from pipeline import Pipeline, stage, testing
from pipeline.errors import (
    BadRequest,
    ContentFiltered,
    EmptyResponse,
    MalformedToolCall,
    PipelineError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RetriesExhausted,
    StreamInterrupted,
)
from pipeline.events import Chunk, Event, Retrying, TextDelta, ToolCall, ToolFragment
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, ScriptedDispatch, text_chunks

REQ = {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}


def rate_limited(**headers: str) -> RateLimited:
    return RateLimited("429 rate limited", status_code=429, headers=headers)


def conn_reset() -> ProviderUnavailable:
    return ProviderUnavailable("connection reset by peer")


def build(*scripts: list[Any], **policy: Any) -> tuple[Pipeline, ScriptedDispatch, FakeClock]:
    clock = FakeClock()
    dispatch = testing.scripted(scripts)
    p = Pipeline.default(
        sleep=clock.sleep, clock=clock.time, policy=RetryPolicy(jitter=False, **policy)
    )
    return p.replace("dispatch", dispatch), dispatch, clock


async def drain(p: Pipeline) -> list[Event]:
    async with p.stream(REQ) as events:
        return [ev async for ev in events]


def texts(events: list[Event]) -> list[str]:
    return [e.text for e in events if isinstance(e, TextDelta)]


# --- never after content ----------------------------------------------------------


@pytest.mark.parametrize("failure", [rate_limited(), conn_reset()], ids=["rate-limit", "transient"])
async def test_failure_after_streamed_text_is_not_retried_and_text_is_not_duplicated(
    failure: Exception,
) -> None:
    p, dispatch, _ = build(
        [Chunk(text="Hello "), Chunk(text="world"), failure], text_chunks("Hello ", "world")
    )
    seen: list[Event] = []
    with pytest.raises(StreamInterrupted) as info:
        async with p.stream(REQ) as events:
            async for ev in events:
                seen.append(ev)
    assert len(dispatch.calls) == 1
    assert texts(seen) == ["Hello ", "world"]
    assert info.value.partial_text == "Hello world"
    assert info.value.transient is True
    assert info.value.__cause__ is failure


async def test_no_duplicate_deltas_across_many_chunks() -> None:
    tokens = [f"t{i} " for i in range(50)]
    p, dispatch, _ = build([*(Chunk(text=t) for t in tokens), rate_limited()])
    seen: list[Event] = []
    with pytest.raises(StreamInterrupted):
        async with p.stream(REQ) as events:
            async for ev in events:
                seen.append(ev)
    assert texts(seen) == tokens
    assert len(dispatch.calls) == 1


async def test_failure_before_any_text_is_retried() -> None:
    p, dispatch, clock = build([conn_reset()], text_chunks("Hello world"))
    events = await drain(p)
    assert texts(events) == ["Hello world"]
    assert len(dispatch.calls) == 2
    assert [e for e in events if isinstance(e, Retrying)] == [
        Retrying(attempt=1, delay_s=2.0, reason="transient")
    ]
    assert clock.sleeps == [2.0]


async def test_tool_only_stream_error_is_still_retried() -> None:
    frag = Chunk(
        tool_fragments=(ToolFragment(index=0, id="call_1", name="search", arguments='{"q": "x"}'),)
    )
    p, dispatch, _ = build([frag, conn_reset()], [frag, Chunk(finish_reason="tool_calls")])
    events = await drain(p)
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall(id="call_1", name="search", arguments={"q": "x"})
    ]
    assert len(dispatch.calls) == 2


async def test_reasoning_counts_as_delivered() -> None:
    p, dispatch, _ = build([Chunk(reasoning="hmm"), conn_reset()], text_chunks("x"))
    with pytest.raises(StreamInterrupted):
        await drain(p)
    assert len(dispatch.calls) == 1


async def test_non_retryable_failure_after_text_is_an_interruption_too() -> None:
    bad = Chunk(tool_fragments=(ToolFragment(index=0, id="c", name="f", arguments="{oops"),))
    p, dispatch, _ = build([Chunk(text="calling"), bad, Chunk(finish_reason="tool_calls")])
    with pytest.raises(StreamInterrupted) as info:
        await drain(p)
    assert len(dispatch.calls) == 1
    assert (info.value.partial_text, info.value.transient) == ("calling", False)
    assert isinstance(info.value.__cause__, MalformedToolCall)


@pytest.mark.parametrize(
    ("delivered", "text", "calls"),
    [
        ([Chunk(reasoning="let me think")], "", ()),
        ([Chunk(text="Hel"), Chunk(text="lo")], "Hello", ()),
    ],
    ids=["after-reasoning", "after-text"],
)
@pytest.mark.parametrize(
    ("failure", "transient"),
    [
        (BadRequest("tool call validation failed", status_code=400), False),
        (ContentFiltered("blocked mid-answer"), False),
        (conn_reset(), True),
        (rate_limited(), True),
    ],
    ids=["bad-request", "content-filter", "transient", "rate-limit"],
)
async def test_every_failure_after_content_is_an_interruption_with_the_partial_output(
    delivered: list[Chunk],
    text: str,
    calls: tuple[ToolCall, ...],
    failure: Exception,
    transient: bool,
) -> None:
    p, dispatch, clock = build([*delivered, failure], text_chunks("never"))
    with pytest.raises(StreamInterrupted) as info:
        await drain(p)
    exc = info.value
    assert (exc.partial_text, exc.partial_tool_calls, exc.transient) == (text, calls, transient)
    assert exc.__cause__ is failure
    assert (len(dispatch.calls), clock.sleeps) == (1, [])


@pytest.mark.parametrize(
    ("failure", "transient"),
    [(BadRequest("rejected", status_code=400), False), (conn_reset(), True)],
    ids=["bad-request", "transient"],
)
async def test_a_failure_after_a_tool_call_went_out_is_an_interruption(
    failure: Exception, transient: bool
) -> None:
    async def fail_after_tool_calls(upstream: Any, ctx: Any) -> Any:
        async for ev in upstream:
            yield ev
            if isinstance(ev, ToolCall):
                raise failure

    p, dispatch, _ = build(testing.tool_chunks(("c1", "f", '{"a": 1}')), text_chunks("never"))
    p = p.insert_after("empty_check", stage("check_calls", fail_after_tool_calls))
    with pytest.raises(StreamInterrupted) as info:
        await drain(p)
    assert info.value.partial_tool_calls == (ToolCall(id="c1", name="f", arguments={"a": 1}),)
    assert (info.value.partial_text, info.value.transient) == ("", transient)
    assert info.value.__cause__ is failure
    assert len(dispatch.calls) == 1


# --- budgets per cause -------------------------------------------------------------


async def test_persistent_rate_limit_uses_exactly_its_budget() -> None:
    p, dispatch, clock = build(*([rate_limited()] for _ in range(4)), rate_limit_retries=3)
    with pytest.raises(RetriesExhausted) as info:
        await drain(p)
    assert len(dispatch.calls) == 4
    assert info.value.attempts == 4
    assert info.value.reason == "rate_limited"
    assert isinstance(info.value.__cause__, RateLimited)
    assert clock.sleeps == [2, 4, 8]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        (rate_limited(**{"retry-after": "1"}), "rate_limited"),
        (conn_reset(), "transient"),
        (ProviderTimeout("stalled"), "transient"),
        (ProviderUnavailable("bad gateway", status_code=502, provider="openai"), "transient"),
    ],
    ids=["rate-limited", "unavailable", "timeout", "5xx"],
)
async def test_exhausted_retries_are_also_an_instance_of_the_cause_class(
    failure: ProviderError, reason: str
) -> None:
    p, dispatch, _ = build([failure], [failure], rate_limit_retries=1, transient_retries=1)
    with pytest.raises(type(failure)) as info:
        await drain(p)
    exc = info.value
    assert isinstance(exc, RetriesExhausted)
    assert (exc.attempts, exc.reason, exc.__cause__) == (2, reason, failure)
    assert (exc.status_code, exc.provider, exc.headers) == (
        failure.status_code,
        failure.provider,
        failure.headers,
    )
    assert exc.transient is True
    assert len(dispatch.calls) == 2


async def test_rate_limit_exhaustion_is_caught_by_except_rate_limited() -> None:
    p, _, _ = build(*([rate_limited()] for _ in range(3)), rate_limit_retries=2)
    try:
        await drain(p)
    except RateLimited as exc:
        caught: Exception = exc
    assert isinstance(caught, RetriesExhausted)
    assert caught.attempts == 3


class Overloaded(ProviderUnavailable):
    """A cause class defined outside llmpipe, with an attribute of its own."""

    def __init__(self, message: str, *, region: str) -> None:
        super().__init__(message, status_code=529)
        self.region = region


class Flaky(PipelineError):
    transient = True

    def __init__(self, code: int) -> None:  # a signature unlike any of llmpipe's
        super().__init__(f"flaky {code}")
        self.code = code


@pytest.mark.parametrize(
    "failure", [Overloaded("overloaded", region="eu"), Flaky(7)], ids=["subclass", "own-class"]
)
async def test_exhaustion_takes_the_class_of_causes_defined_elsewhere(failure: Exception) -> None:
    p, _, _ = build([failure], [failure], transient_retries=1)
    with pytest.raises(type(failure)) as info:
        await drain(p)
    assert isinstance(info.value, RetriesExhausted)
    assert info.value.__cause__ is failure
    for name, value in vars(failure).items():
        if name != "message":
            assert getattr(info.value, name) == value


async def test_a_deadline_that_runs_out_keeps_the_cause_class_too() -> None:
    wait10 = {"retry-after": "10"}
    p, _, _ = build(*([rate_limited(**wait10)] for _ in range(5)), deadline_s=15)
    with pytest.raises(RateLimited) as info:
        await drain(p)
    assert isinstance(info.value, RetriesExhausted)
    assert info.value.reason == "deadline"


async def test_server_given_waits_are_honoured_without_jitter() -> None:
    clock = FakeClock()
    dispatch = testing.scripted(
        [
            [rate_limited(**{"retry-after-ms": "1500"})],
            [rate_limited(**{"retry-after": "3"})],
            text_chunks("ok"),
        ]
    )
    p = Pipeline.default(sleep=clock.sleep, clock=clock.time).replace(
        "dispatch", dispatch
    )  # jitter on
    events = await drain(p)
    assert clock.sleeps == [1.5, 3.0]
    assert [(e.attempt, e.delay_s, e.reason) for e in events if isinstance(e, Retrying)] == [
        (1, 1.5, "rate_limited"),
        (2, 3.0, "rate_limited"),
    ]


async def test_computed_backoff_is_jittered() -> None:
    clock = FakeClock()
    dispatch = testing.scripted([[conn_reset()] for _ in range(3)] + [text_chunks("ok")])
    p = Pipeline.default(sleep=clock.sleep, clock=clock.time).replace("dispatch", dispatch)
    await drain(p)
    for base, slept in zip([2, 4, 8], clock.sleeps, strict=True):
        assert 0.5 * base <= slept < 1.5 * base


async def test_each_cause_has_its_own_budget() -> None:
    p, dispatch, _ = build(
        [conn_reset()],
        [rate_limited()],
        [conn_reset()],
        [rate_limited()],
        [conn_reset()],
        text_chunks("ok"),
        transient_retries=3,
        rate_limit_retries=2,
    )
    events = await drain(p)
    assert texts(events) == ["ok"]
    assert [e.reason for e in events if isinstance(e, Retrying)] == [
        "transient",
        "rate_limited",
        "transient",
        "rate_limited",
        "transient",
    ]
    assert len(dispatch.calls) == 6


async def test_transient_budget_default_is_three() -> None:
    p, dispatch, _ = build(*([conn_reset()] for _ in range(5)))
    with pytest.raises(RetriesExhausted) as info:
        await drain(p)
    assert (len(dispatch.calls), info.value.reason) == (4, "transient")


async def test_timeouts_are_transient() -> None:
    p, dispatch, _ = build([ProviderTimeout("stalled")], text_chunks("ok"))
    assert texts(await drain(p)) == ["ok"]
    assert len(dispatch.calls) == 2


async def test_empty_answers_retry_three_times_with_a_fixed_delay() -> None:
    empty = text_chunks(finish="stop")
    p, dispatch, clock = build(empty, empty, empty, empty)
    with pytest.raises(RetriesExhausted) as info:
        await drain(p)
    assert isinstance(info.value.__cause__, EmptyResponse)
    assert isinstance(info.value, EmptyResponse)  # the cause's class too
    assert (info.value.reason, info.value.attempts) == ("empty", 4)
    assert len(dispatch.calls) == 4
    assert clock.sleeps == [1.0, 1.0, 1.0]


async def test_empty_then_text_recovers() -> None:
    p, dispatch, _ = build(text_chunks(finish="stop"), text_chunks("there"))
    assert texts(await drain(p)) == ["there"]
    assert len(dispatch.calls) == 2


async def test_length_without_content_is_returned_not_retried() -> None:
    p, dispatch, _ = build(text_chunks(finish="length"))
    resp = await p.acomplete(REQ)
    assert (resp.text, resp.stop_reason, len(dispatch.calls)) == ("", "length", 1)


async def test_non_retryable_errors_raise_at_once() -> None:
    p, dispatch, clock = build([BadRequest("nope", status_code=400)])
    with pytest.raises(BadRequest):
        await drain(p)
    assert (len(dispatch.calls), clock.sleeps) == (1, [])


async def test_a_zero_budget_raises_the_failure_itself() -> None:
    p, _, _ = build([rate_limited()], rate_limit_retries=0)
    with pytest.raises(RateLimited):
        await drain(p)


async def test_deadline_bounds_the_whole_call_including_waits() -> None:
    wait10 = {"retry-after": "10"}
    p, dispatch, clock = build(*([rate_limited(**wait10)] for _ in range(10)), deadline_s=25)
    with pytest.raises(RetriesExhausted) as info:
        await drain(p)
    assert info.value.reason == "deadline"
    assert len(dispatch.calls) == 3  # at t=0, 10, 20; waiting until 30 would pass 25
    assert clock.sleeps == [10, 10]


async def test_retries_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    p, _, _ = build([rate_limited()], text_chunks("ok"))
    with caplog.at_level(logging.WARNING, logger="llmpipe.retry"):
        await drain(p)
    assert "rate_limited" in caplog.text
    assert "retrying in 2.0s (retry 1 of 10)" in caplog.text


# --- cancellation during a wait ---------------------------------------------------------


async def test_cancel_during_backoff_returns_promptly_and_leaves_no_tasks() -> None:
    waiting = asyncio.Event()

    async def blocking_sleep(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()  # a wait nobody ends: only cancellation gets out

    dispatch = testing.scripted([[rate_limited()], text_chunks("never")])
    p = Pipeline.default(sleep=blocking_sleep).replace("dispatch", dispatch)

    async def consume() -> list[Event]:
        return await drain(p)

    task = asyncio.create_task(consume())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dispatch.outcomes == ["raised"]
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_scripted_chunks_are_recorded_for_dumps(tmp_path: Any) -> None:
    import json

    p, _, _ = build(text_chunks(finish="stop"), text_chunks("ok"), dump_dir=tmp_path)
    assert texts(await drain(p)) == ["ok"]
    [dump] = list(tmp_path.glob("*.json"))
    chunks = json.loads(dump.read_text())["chunks"]
    assert [c.get("finish_reason") for c in chunks] == ["stop", None]
