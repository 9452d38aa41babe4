"""The fault matrix through real litellm over real HTTP, on virtual time.

Each test counts the requests the fake provider saw: one retry layer means
exactly budget + 1 requests for a persistent failure, and exactly 1 for an
error that retrying cannot fix.
"""

import asyncio

import pytest

from pipeline import Pipeline
from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextWindowExceeded,
    MalformedToolCall,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RetriesExhausted,
    StreamInterrupted,
)
from pipeline.events import ReasoningDelta, Retrying, TextDelta
from pipeline.policy import RetryPolicy
from pipeline.testing import (
    Drop,
    FakeClock,
    FakeProvider,
    FinishStep,
    Raw,
    Reasoning,
    RecordedRequest,
    Reply,
    Stall,
    Text,
    ToolDelta,
)


def virtual(clock: FakeClock, **policy: object) -> Pipeline:
    return Pipeline.default(sleep=clock.sleep, clock=clock.time, policy=RetryPolicy(**policy))  # type: ignore[arg-type]


@pytest.mark.parametrize("budget", [0, 1, 3])
async def test_persistent_429_makes_exactly_budget_plus_one_requests(
    fake: FakeProvider, clock: FakeClock, request_to, budget: int
) -> None:
    fake.respond_with(lambda r: Reply.error(429, "slow down", headers={"retry-after": "1"}))
    with pytest.raises((RateLimited, RetriesExhausted)):
        await virtual(clock, rate_limit_retries=budget).acomplete(request_to())
    assert len(fake.requests) == budget + 1
    assert clock.sleeps == [1.0] * budget


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply.error(400, "bad request"), BadRequest),
        (Reply.error(401, "invalid api key"), AuthenticationFailed),
        (Reply.error(404, "no such model"), ModelNotFound),
        (
            Reply.error(400, "This model's maximum context length is 8192 tokens"),
            ContextWindowExceeded,
        ),
    ],
    ids=["400", "401", "404", "context-window"],
)
async def test_permanent_errors_make_exactly_one_request(
    pipe: Pipeline,
    fake: FakeProvider,
    clock: FakeClock,
    request_to,
    reply: Reply,
    error: type[ProviderError],
) -> None:
    fake.respond_with(lambda r: reply)
    with pytest.raises(error):
        await pipe.acomplete(request_to())
    assert len(fake.requests) == 1
    assert clock.sleeps == []


async def test_500_502_503_then_success(
    pipe: Pipeline, fake: FakeProvider, clock: FakeClock, request_to
) -> None:
    fake.script(
        Reply.error(500, "a"), Reply.error(502, "b"), Reply.error(503, "c"), Reply.text("finally")
    )
    events = []
    async with pipe.stream(request_to()) as stream:
        events = [ev async for ev in stream]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["finally"]
    assert [e.reason for e in events if isinstance(e, Retrying)] == ["transient"] * 3
    assert len(fake.requests) == 4


async def test_drop_before_content_then_success(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply(steps=(Drop(),)), Reply.text("recovered"))
    resp = await pipe.acomplete(request_to())
    assert resp.text == "recovered"
    assert len(fake.requests) == 2


async def test_drop_mid_stream_before_text_is_retried(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    from pipeline.testing import ToolDelta

    fake.script(
        Reply(steps=(ToolDelta(index=0, id="c", name="f", arguments='{"a"'), Drop())),
        Reply.text("ok"),
    )
    resp = await pipe.acomplete(request_to())
    assert (resp.text, len(fake.requests)) == ("ok", 2)


async def test_drop_after_content_raises_and_text_is_delivered_once(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply(steps=(Text("Hello "), Text("wor"), Drop())), Reply.text("Hello world"))
    seen = []
    with pytest.raises(StreamInterrupted) as info:
        async with pipe.stream(request_to()) as events:
            async for ev in events:
                if isinstance(ev, TextDelta):
                    seen.append(ev.text)
    assert seen == ["Hello ", "wor"]
    assert info.value.partial_text == "Hello wor"
    assert info.value.transient is True
    assert len(fake.requests) == 1


async def test_empty_200_then_text(
    pipe: Pipeline, fake: FakeProvider, clock: FakeClock, request_to
) -> None:
    fake.script(Reply.empty(), Reply.text("there you go"))
    resp = await pipe.acomplete(request_to())
    assert resp.text == "there you go"
    assert resp.retries == 1
    assert clock.sleeps == [1.0]


async def test_persistent_empty_gives_the_empty_response_error_after_three_retries(
    pipe: Pipeline, fake: FakeProvider, clock: FakeClock, request_to
) -> None:
    from pipeline.errors import EmptyResponse

    fake.respond_with(lambda r: Reply.empty())
    with pytest.raises(RetriesExhausted) as info:
        await pipe.acomplete(request_to())
    assert isinstance(info.value.__cause__, EmptyResponse)
    assert len(fake.requests) == 4
    assert clock.sleeps == [1.0, 1.0, 1.0]


async def test_429_forever_with_a_small_budget(
    fake: FakeProvider, clock: FakeClock, request_to
) -> None:
    fake.respond_with(lambda r: Reply.error(429, "slow down", headers={"retry-after-ms": "250"}))
    with pytest.raises(RetriesExhausted) as info:
        await virtual(clock, rate_limit_retries=2).acomplete(request_to())
    assert (info.value.attempts, info.value.reason) == (3, "rate_limited")
    assert info.value.__cause__.headers["retry-after-ms"] == "250"  # type: ignore[union-attr]
    assert clock.sleeps == [0.25, 0.25]
    assert len(fake.requests) == 3


# --- timeouts (a real stalling server; the timeouts themselves are short) ------------------


async def test_stall_before_content_is_retried_as_transient(
    fake: FakeProvider, clock: FakeClock, request_to
) -> None:
    fake.script(Reply(steps=(Stall(None),)), Reply.text("after the stall"))
    p = virtual(clock, first_chunk_timeout_s=0.2, idle_timeout_s=0.2)
    resp = await p.acomplete(request_to())
    assert resp.text == "after the stall"
    assert len(fake.requests) == 2
    conn = fake.connections[0]
    assert conn.closed_by == "client"


async def test_stall_after_content_raises_the_interruption_error(
    fake: FakeProvider, clock: FakeClock, request_to
) -> None:
    fake.script(Reply(steps=(Text("partial "), Stall(None))), Reply.text("never"))
    p = virtual(clock, first_chunk_timeout_s=1.0, idle_timeout_s=0.2)
    with pytest.raises(StreamInterrupted) as info:
        await p.acomplete(request_to())
    assert info.value.partial_text == "partial "
    assert "stalled" in str(info.value)
    assert len(fake.requests) == 1
    await fake.wait_closed(timeout=1.0)


# --- one gate per endpoint ---------------------------------------------------------------------


class ManualClock:
    """Virtual time that moves only when the test says; sleepers wait for it."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers = 0
        self._cond = asyncio.Condition()

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        until = self.now + seconds
        async with self._cond:
            self.sleepers += 1
            self._cond.notify_all()
            try:
                await self._cond.wait_for(lambda: self.now >= until)
            finally:
                self.sleepers -= 1

    async def wait_for_sleepers(self, n: int) -> None:
        async with self._cond:
            await self._cond.wait_for(lambda: self.sleepers >= n)

    async def advance(self, seconds: float) -> None:
        async with self._cond:
            self.now += seconds
            self._cond.notify_all()


async def test_fifty_concurrent_calls_share_one_backoff(fake: FakeProvider, request_to) -> None:
    clock = ManualClock()
    in_flight = 5

    def provider(req: RecordedRequest) -> Reply:
        # Rate limited until virtual time 0.5, and it says so.
        if clock.now < 0.5:
            return Reply.error(
                429, "rate limited", headers={"retry-after-ms": str(int((0.5 - clock.now) * 1000))}
            )
        return Reply.text(f"answer {req.index}")

    fake.respond_with(provider)
    p = Pipeline.default(
        sleep=clock.sleep, clock=clock.time, policy=RetryPolicy(max_in_flight=in_flight)
    )
    async with asyncio.timeout(30):
        tasks = [asyncio.create_task(p.acomplete(request_to())) for _ in range(50)]
        # Every call ends up waiting: the first burst on its own backoff, the rest at the gate.
        await clock.wait_for_sleepers(50)
        await clock.advance(0.5)
        results = await asyncio.gather(*tasks)
    assert len(results) == 50
    assert all(r.text.startswith("answer") for r in results)
    # 50 answers + the first burst of 429s: the constant is max_in_flight. Without
    # the shared gate every call would meet its own 429 (100 requests).
    assert len(fake.requests) == 50 + in_flight


@pytest.mark.parametrize("status", [408, 504])
async def test_litellm_timeouts_are_transient(
    pipe: Pipeline, fake: FakeProvider, request_to, status: int
) -> None:
    # litellm raises litellm.exceptions.Timeout for these, which is not an APIConnectionError.
    fake.script(Reply.error(status, "timed out"), Reply.text("second time lucky"))
    resp = await pipe.acomplete(request_to())
    assert (resp.text, resp.retries, len(fake.requests)) == ("second time lucky", 1, 2)


# --- the cause's type survives an exhausted budget; after content, an interruption ---------


async def test_persistent_429_is_caught_by_except_rate_limited_and_by_except_retries_exhausted(
    fake: FakeProvider, clock: FakeClock, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.respond_with(lambda r: Reply.error(429, "slow down", headers={"retry-after": "2"}))
    with pytest.raises(RateLimited) as info:
        await virtual(clock, rate_limit_retries=2).acomplete(request_to())
    exc = info.value
    assert isinstance(exc, RetriesExhausted)
    assert (exc.attempts, exc.reason, exc.status_code) == (3, "rate_limited", 429)
    assert exc.headers["retry-after"] == "2"
    assert isinstance(exc.__cause__, RateLimited)
    assert not isinstance(exc.__cause__, RetriesExhausted)
    assert len(fake.requests) == 3


GROQ_ERROR_EVENT = (
    b'data: {"error": {"message": "tool call validation failed", '
    b'"type": "invalid_request_error", "code": 400}}\n\n'
)


async def test_an_error_event_after_reasoning_is_an_interruption_not_a_bare_error(
    pipe: Pipeline, fake: FakeProvider, clock: FakeClock, request_to
) -> None:  # type: ignore[no-untyped-def]
    """Groq sends a stream error as a ``data:`` event after the reasoning it streamed."""
    fake.script(Reply((Reasoning("Let me think"), Reasoning(" about it."), Raw(GROQ_ERROR_EVENT))))
    seen = []
    with pytest.raises(StreamInterrupted) as info:
        async with pipe.stream(request_to(model="groq/fake-model")) as events:
            async for ev in events:
                seen.append(ev)
    assert seen == [ReasoningDelta(text="Let me think"), ReasoningDelta(text=" about it.")]
    exc = info.value
    assert (exc.partial_text, exc.partial_tool_calls, exc.transient) == ("", (), False)
    assert isinstance(exc.__cause__, BadRequest)
    assert "tool call validation failed" in str(exc)
    assert (len(fake.requests), clock.sleeps) == (1, [])


async def test_malformed_tool_call_after_text_keeps_the_text(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(
        Reply(
            (
                Text("Calling it now."),
                ToolDelta(0, "c1", "lookup", "[1, 2"),
                FinishStep("tool_calls"),
            )
        )
    )
    with pytest.raises(StreamInterrupted) as info:
        await pipe.acomplete(request_to())
    assert (info.value.partial_text, info.value.transient) == ("Calling it now.", False)
    assert isinstance(info.value.__cause__, MalformedToolCall)
    assert len(fake.requests) == 1
