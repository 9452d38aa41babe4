"""Every way a call can end leaves a correct span tree.

Normal end, consumer ``break``, consumer exception, task cancellation, and a
stream dropped without closing: in each, every span that started ends exactly
once, with the right outcome and status (closing and cancelling are not
errors), stage spans hang under the call's root span, the root under the
consumer's span, the consumer's own spans never under a stage span, and
OpenTelemetry never logs "Failed to detach context".
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context as OtelContext
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import StatusCode

from pipeline import Pipeline, stage, testing
from pipeline.context import Context
from pipeline.events import Chunk, Event, TextDelta
from tests.telemetry.conftest import Spans, assert_no_context_errors

REQ: dict[str, Any] = {
    "model": "anthropic/claude-x",
    "messages": [{"role": "user", "content": "hi"}],
}
OUTER = ("normalize", "cache_tag")
#: fallback and tool_compat stand aside: no fallback target, no tools
INNER = ("retry", "dispatch", "reassemble", "usage", "empty_check")
LONG = [Chunk(text=f"t{i} ") for i in range(50)]
STATUS = {"ok": StatusCode.OK, "closed": StatusCode.UNSET, "cancelled": StatusCode.UNSET}


class Tracking(SpanProcessor):
    """Which spans started and how many times each ended."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.ended: dict[int, int] = {}

    def on_start(self, span: Span, parent_context: OtelContext | None = None) -> None:
        self.started.append(span.context.span_id)

    def on_end(self, span: ReadableSpan) -> None:
        sid = span.context.span_id if span.context else 0
        self.ended[sid] = self.ended.get(sid, 0) + 1


@pytest.fixture
def tracked(spans: Spans) -> Tracking:
    t = Tracking()
    spans.provider.add_span_processor(t)
    return t


Consume = Callable[[Pipeline, trace.Tracer], Awaitable[None]]


async def normal_end(p: Pipeline, tracer: trace.Tracer) -> None:
    async with p.stream(REQ) as events:
        async for _ in events:
            with tracer.start_as_current_span("handle"):
                pass


async def consumer_break(p: Pipeline, tracer: trace.Tracer) -> None:
    async with p.stream(REQ) as events:
        async for ev in events:
            with tracer.start_as_current_span("handle"):
                pass
            if isinstance(ev, TextDelta):
                break


async def consumer_raises(p: Pipeline, tracer: trace.Tracer) -> None:
    with pytest.raises(KeyError):
        async with p.stream(REQ) as events:
            async for ev in events:
                with tracer.start_as_current_span("handle"):
                    pass
                if isinstance(ev, TextDelta):
                    raise KeyError("consumer bug")


async def dropped(p: Pipeline, tracer: trace.Tracer) -> None:
    stream = p.stream(REQ)
    async for ev in stream:  # no `async with`, and never closed
        with tracer.start_as_current_span("handle"):
            pass
        if isinstance(ev, TextDelta):
            break
    del stream, ev
    gc.collect()
    for _ in range(20):  # the event loop's finaliser closes the generators in a task of its own
        await asyncio.sleep(0)


CASES: dict[str, tuple[Consume, str]] = {
    "normal end": (normal_end, "ok"),
    "break": (consumer_break, "closed"),
    "consumer exception": (consumer_raises, "closed"),
    "dropped without closing": (dropped, "closed"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_every_span_ends_once_with_its_outcome(
    case: str, spans: Spans, tracked: Tracking, otel_logs: pytest.LogCaptureFixture
) -> None:
    consume, outcome = CASES[case]
    p = spans.pipeline([[*LONG, *testing.text_chunks("end")]])
    tracer = spans.provider.get_tracer("consumer")
    with tracer.start_as_current_span("consumer") as mine:
        await consume(p, tracer)
        assert trace.get_current_span() is mine  # nothing left attached
    check_tree(spans, tracked, {name: outcome for name in (*OUTER, *INNER)}, outcome)
    assert_no_context_errors(otel_logs)


async def test_cancellation(
    spans: Spans, tracked: Tracking, otel_logs: pytest.LogCaptureFixture
) -> None:
    gate, never = asyncio.Event(), asyncio.Event()

    async def slow_dispatch(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async for _ in upstream:
            yield Chunk(text="first")
            gate.set()
            await never.wait()  # the consumer's task is cancelled here
            yield Chunk(text="never")

    p = spans.pipeline([]).replace("dispatch", stage("dispatch", slow_dispatch))
    tracer = spans.provider.get_tracer("consumer")

    async def consume() -> None:
        with tracer.start_as_current_span("consumer"):
            await normal_end(p, tracer)

    task = asyncio.create_task(consume())
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the stages the cancellation went through were cancelled; those upstream of retry, closed
    expected = {name: "cancelled" for name in INNER} | {name: "closed" for name in OUTER}
    check_tree(spans, tracked, expected, "cancelled")
    assert_no_context_errors(otel_logs)


def check_tree(
    spans: Spans, tracked: Tracking, outcomes: dict[str, str], root_outcome: str
) -> None:
    finished = spans.finished
    # every span that started ended, exactly once
    assert sorted(tracked.started) == sorted(tracked.ended)
    assert set(tracked.ended.values()) == {1}
    by_id = {s.context.span_id: s for s in finished}
    names = sorted(s.name for s in finished if s.name not in ("consumer", "handle"))
    assert names == sorted(["chat claude-x", "attempt 1", *outcomes])

    root, consumer = spans.root(), spans.one("consumer")
    assert root.parent is not None and root.parent.span_id == consumer.context.span_id
    assert (root.attributes or {})["llmpipe.outcome"] == root_outcome
    # closing and cancelling are not errors: no status; what succeeded says OK
    assert root.status.status_code is STATUS[root_outcome]
    attempt = spans.one("attempt 1")
    assert (attempt.attributes or {})["llmpipe.outcome"] == outcomes["retry"]
    assert attempt.status.status_code is STATUS[outcomes["retry"]]
    assert (
        attempt.parent is not None and attempt.parent.span_id == spans.one("retry").context.span_id
    )
    for name, outcome in outcomes.items():
        span = spans.one(name)
        assert (span.attributes or {})["llmpipe.stage.outcome"] == outcome, name
        assert span.status.status_code is STATUS[outcome], name
        # each stage span is a descendant of the root, inside the same trace
        parent = span
        while parent.parent is not None and parent.parent.span_id in by_id and parent is not root:
            parent = by_id[parent.parent.span_id]
        assert parent is root, name
    stage_ids = {spans.one(n).context.span_id for n in outcomes} | {root.context.span_id}
    for handled in spans.named("handle"):
        assert handled.parent is not None
        assert handled.parent.span_id == consumer.context.span_id
        assert handled.parent.span_id not in stage_ids


async def test_each_pull_in_a_task_of_its_own(
    spans: Spans, tracked: Tracking, otel_logs: pytest.LogCaptureFixture
) -> None:
    """``asyncio.wait_for`` (3.11) and ``create_task`` pull in other tasks, with other contexts:
    a span made current for a pull is still detached in the context it was attached in."""
    p = spans.pipeline([[*LONG, *testing.text_chunks("end")]])
    tracer = spans.provider.get_tracer("consumer")
    with tracer.start_as_current_span("consumer") as mine:
        async with p.stream(REQ) as events:
            while True:
                try:
                    await asyncio.wait_for(asyncio.ensure_future(events.__anext__()), 5)
                except StopAsyncIteration:
                    break
                with tracer.start_as_current_span("handle"):
                    pass
        assert trace.get_current_span() is mine
    check_tree(spans, tracked, {name: "ok" for name in (*OUTER, *INNER)}, "ok")
    assert_no_context_errors(otel_logs)


async def test_a_call_made_and_never_pulled_starts_no_span(spans: Spans, tracked: Tracking) -> None:
    """``p.run(...)`` builds the chain (the call's telemetry with it); nothing starts
    until the first pull, so an iterator dropped unpulled leaves no span open."""
    p = spans.pipeline([[*LONG, *testing.text_chunks("end")]] * 2)
    unpulled = p.run(REQ)
    assert tracked.started == []
    await unpulled.aclose()  # type: ignore[attr-defined]
    assert tracked.started == [] and spans.finished == ()
    async with p.stream(REQ) as events:  # the same pipeline, pulled: every span, once
        async for _ in events:
            pass
    assert tracked.started and set(tracked.ended) == set(tracked.started)
    assert set(tracked.ended.values()) == {1}
