"""The span tree of one call: GenAI attributes, a span per stage, retries, first chunk, errors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from pipeline import Pipeline, testing
from pipeline.context import Context
from pipeline.errors import BadRequest, RateLimited, RetriesExhausted
from pipeline.events import Chunk, Event, TextDelta
from pipeline.policy import RetryPolicy
from pipeline.stage import PLAIN, stage
from telemetry import TelemetryInstrument
from tests.telemetry.conftest import (
    SECRET,
    Spans,
    assert_each_span_ended_once,
    assert_no_context_errors,
)

REQ: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "what is the capital of France?"}],
    "system": "be brief",
    "max_tokens": 256,
    "api_key": SECRET,
    "api_base": "http://127.0.0.1:9/v1",
}
#: fallback and tool_compat stand aside (no fallback target, no tools): no spans
STAGES = [
    "normalize",
    "cache_tag",
    "retry",
    "dispatch",
    "reassemble",
    "usage",
    "empty_check",
]


def ok_script() -> list[Chunk | str | BaseException]:
    return [*testing.text_chunks("Par", "is", model="gpt-4o-mini-2024")]


async def test_one_root_span_with_the_genai_conventions(spans: Spans) -> None:
    resp = await spans.pipeline([ok_script()]).acomplete(REQ)
    assert resp.text == "Paris"
    root = spans.root()
    assert root.name == "chat gpt-4o-mini"
    assert root.kind is SpanKind.CLIENT
    assert root.parent is None
    assert root.status.status_code is StatusCode.OK
    attrs = dict(root.attributes or {})
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.request.max_tokens"] == 256
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert attrs["gen_ai.response.finish_reasons"] == ("stop",)
    assert attrs["gen_ai.usage.input_tokens"] == 10
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 0
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == 9
    assert attrs["llmpipe.outcome"] == "ok"
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    assert "error.type" not in attrs
    assert_each_span_ended_once(spans.finished)


async def test_a_span_per_stage_under_the_root_and_inner_stages_under_their_segment(
    spans: Spans,
) -> None:
    await spans.pipeline([ok_script()]).acomplete(REQ)
    assert sorted(s.name for s in spans.finished) == sorted(
        ["chat gpt-4o-mini", "attempt 1", *STAGES]
    )
    by_name = {s.name: s for s in spans.finished}
    root = spans.root()

    def parent(name: str) -> str:
        span = by_name[name]
        assert span.parent is not None
        assert span.context.trace_id == root.context.trace_id
        return next(s.name for s in spans.finished if s.context.span_id == span.parent.span_id)

    assert {n: parent(n) for n in [*STAGES, "attempt 1"]} == {
        "normalize": "chat gpt-4o-mini",
        "cache_tag": "chat gpt-4o-mini",
        "retry": "chat gpt-4o-mini",
        "attempt 1": "retry",
        "dispatch": "attempt 1",
        "reassemble": "attempt 1",
        "usage": "attempt 1",
        "empty_check": "attempt 1",
    }
    for name in STAGES:
        attrs = by_name[name].attributes or {}
        assert attrs["llmpipe.stage.outcome"] == "ok", name
        assert by_name[name].status.status_code is StatusCode.OK


async def test_stage_spans_count_events_and_their_own_time(spans: Spans) -> None:
    await spans.pipeline([ok_script()]).acomplete(REQ)
    attrs = {s.name: dict(s.attributes or {}) for s in spans.finished}
    # dispatch: the request in; three chunks, finish and usage out (2 text + finish + usage)
    assert (
        attrs["dispatch"]["llmpipe.stage.events_in"],
        attrs["dispatch"]["llmpipe.stage.events_out"],
    ) == (1, 4)
    # reassemble: those 4 in; 2 deltas, TextEnd, Finish and the usage chunk out
    assert attrs["reassemble"]["llmpipe.stage.events_in"] == 4
    assert attrs["normalize"]["llmpipe.stage.events_in"] == 1
    assert (
        attrs["retry"]["llmpipe.stage.events_out"]
        == attrs["empty_check"]["llmpipe.stage.events_out"]
    )
    root = spans.root()
    total = (root.end_time or 0) - (root.start_time or 0)
    own = [attrs[n]["llmpipe.stage.self_time_s"] for n in STAGES]
    assert all(t >= 0 for t in own)
    # time in a stage itself excludes its upstream's: the parts add up to no more than the whole
    assert sum(own) * 1e9 <= total
    assert attrs["dispatch"]["gen_ai.response.time_to_first_chunk"] >= 0


async def test_each_retry_is_an_event_on_the_retry_span_and_each_attempt_a_span(
    spans: Spans,
) -> None:
    p = spans.pipeline([[RateLimited("slow down")], ok_script()])
    resp = await p.acomplete(REQ)
    assert resp.retries == 1
    retry = spans.one("retry")
    events = [e for e in retry.events if e.name == "retry"]
    assert len(events) == 1
    ev = dict(events[0].attributes or {})
    assert ev["llmpipe.retry.attempt"] == 1
    assert ev["llmpipe.retry.reason"] == "rate_limited"
    assert ev["llmpipe.retry.delay_s"] > 0
    dispatches = sorted(spans.named("dispatch"), key=lambda s: s.start_time or 0)
    assert [(d.attributes or {})["llmpipe.attempt"] for d in dispatches] == [1, 2]
    failed, ok = dispatches
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "pipeline.errors.RateLimited"
    assert [e.name for e in failed.events] == ["exception"]
    assert ok.status.status_code is StatusCode.OK
    # each attempt its own span under retry; the first says what came next
    first, second = spans.one("attempt 1"), spans.one("attempt 2")
    assert {first.parent.span_id, second.parent.span_id} == {retry.context.span_id}  # type: ignore[union-attr]
    assert first.status.status_code is StatusCode.ERROR
    then = dict(first.attributes or {})
    assert then["llmpipe.then"] == "retrying"
    assert then["llmpipe.then.reason"] == "rate_limited"
    assert then["llmpipe.then.delay_s"] == ev["llmpipe.retry.delay_s"]
    assert second.status.status_code is StatusCode.OK
    assert "llmpipe.then" not in (second.attributes or {})
    # the failure was handled: the call itself is fine, and says it retried
    root = spans.root()
    assert root.status.status_code is StatusCode.OK
    assert (root.attributes or {})["llmpipe.retries"] == 1
    assert_each_span_ended_once(spans.finished)


async def test_a_failed_call_has_error_type_and_an_error_status(spans: Spans) -> None:
    p = spans.pipeline([[BadRequest("no such model")]])
    with pytest.raises(BadRequest):
        await p.acomplete(REQ)
    root = spans.root()
    assert root.status.status_code is StatusCode.ERROR
    assert "no such model" in (root.status.description or "")
    assert (root.attributes or {})["error.type"] == "pipeline.errors.BadRequest"
    assert (root.attributes or {})["llmpipe.outcome"] == "error"
    # error status where it arose, on its attempt and on the root; the others were closed
    errors = sorted(s.name for s in spans.finished if s.status.status_code is StatusCode.ERROR)
    assert errors == ["attempt 1", "chat gpt-4o-mini", "dispatch"]
    for name in STAGES:
        span = spans.one(name)
        want = "error" if name == "dispatch" else "closed"
        assert (span.attributes or {})["llmpipe.stage.outcome"] == want, name
        assert ("error.type" in (span.attributes or {})) is (name == "dispatch"), name
    # the exception is recorded once, where it arose, not on every span it crossed
    recorded = [s.name for s in spans.finished for e in s.events if e.name == "exception"]
    assert recorded == ["dispatch"]


async def test_a_call_out_of_retries_is_red_where_it_failed_and_gave_up_only(
    spans: Spans,
) -> None:
    p = spans.pipeline(
        [[RateLimited("slow down")], [RateLimited("slow down")]],
        policy=RetryPolicy(rate_limit_retries=1),
    )
    with pytest.raises(RetriesExhausted):
        await p.acomplete(REQ)
    errors = sorted(s.name for s in spans.finished if s.status.status_code is StatusCode.ERROR)
    # each 429 where it arose and its attempt; retry where it gave up; the call as a whole
    assert errors == ["attempt 1", "attempt 2", "chat gpt-4o-mini", "dispatch", "dispatch", "retry"]
    assert (spans.one("retry").attributes or {})["error.type"] == "pipeline.errors.RetriesExhausted"
    for name in ("normalize", "cache_tag", "reassemble", "usage", "empty_check"):
        for span in spans.named(name):
            assert span.status.status_code is not StatusCode.ERROR, name
    # the last attempt's failure has no retry after it: it says nothing of what came next
    assert "llmpipe.then" in (spans.one("attempt 1").attributes or {})
    assert "llmpipe.then" not in (spans.one("attempt 2").attributes or {})
    recorded = sorted(s.name for s in spans.finished for e in s.events if e.name == "exception")
    assert recorded == ["dispatch", "dispatch", "retry"]
    assert_each_span_ended_once(spans.finished)


async def test_stage_span_is_current_inside_the_stage_only(spans: Spans) -> None:
    seen: list[str] = []

    async def probe(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async for ev in upstream:
            seen.append(
                trace.get_current_span().get_span_context().span_id.to_bytes(8, "big").hex()
            )
            yield ev

    p = spans.pipeline([ok_script()]).insert_after("usage", stage("probe", probe))
    tracer = spans.provider.get_tracer("consumer")
    with tracer.start_as_current_span("consumer") as mine:
        async with p.stream(REQ) as events:
            async for _ in events:
                # between pulls, the consumer's own span is current, never a stage span
                assert trace.get_current_span() is mine
    probe_id = spans.one("probe").context.span_id.to_bytes(8, "big").hex()
    assert seen and set(seen) == {probe_id}


async def test_the_root_span_is_a_child_of_the_span_current_when_the_stream_is_entered(
    spans: Spans,
) -> None:
    tracer = spans.provider.get_tracer("consumer")
    p = spans.pipeline([ok_script()])
    with tracer.start_as_current_span("agent step"):
        async with p.stream(REQ) as events:
            async for _ in events:
                with tracer.start_as_current_span("handle event"):
                    pass
    step = spans.one("agent step")
    root = spans.root()
    assert root.parent is not None and root.parent.span_id == step.context.span_id
    stage_ids = {s.context.span_id for s in spans.finished if s.name in STAGES}
    handled = spans.named("handle event")
    assert handled
    assert {h.parent.span_id for h in handled if h.parent} == {step.context.span_id}
    assert not {h.parent.span_id for h in handled if h.parent} & stage_ids


async def test_no_sdk_means_no_wrapping_at_all() -> None:
    """With OpenTelemetry's no-op providers, stages are chained exactly as without telemetry."""
    seen: list[tuple[object, str]] = []

    async def probe(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        seen.append((ctx.instrument, getattr(upstream, "__qualname__", "?")))
        async for ev in upstream:
            yield ev

    p = (
        Pipeline.default()  # the default instrument, the global (proxy) tracer provider
        .replace("dispatch", testing.scripted([ok_script()]))
        .insert_after("usage", stage("probe", probe))
    )
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    resp = await p.acomplete(REQ)
    assert resp.text == "Paris"
    [(instrument, upstream)] = seen
    assert instrument is PLAIN
    assert "run_stage" not in upstream and "counted" not in upstream


async def test_a_probe_sees_the_telemetry_wrapper_when_tracing(spans: Spans) -> None:
    seen: list[str] = []

    async def probe(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        seen.append(getattr(upstream, "__qualname__", "?"))
        async for ev in upstream:
            yield ev

    p = spans.pipeline([ok_script()]).insert_after("usage", stage("probe", probe))
    await p.acomplete(REQ)
    assert seen == ["run_stage"]


async def test_sampled_out_calls_record_nothing_and_still_work() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    clock = testing.FakeClock()
    p = Pipeline.default(
        instrument=TelemetryInstrument(tracer_provider=provider),
        sleep=clock.sleep,
        clock=clock.time,
    ).replace("dispatch", testing.scripted([[RateLimited("x")], ok_script()]))
    resp = await p.acomplete(REQ)
    assert resp.text == "Paris" and resp.retries == 1
    assert exporter.get_finished_spans() == ()


class _BrokenTracerProvider(TracerProvider):
    """An SDK provider whose tracer fails to start spans: the root's, or the stages'."""

    def __init__(self, fail: str) -> None:
        super().__init__()
        self.fail = fail

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        real = super().get_tracer(*args, **kwargs)
        fail = self.fail

        class Tracer(trace.NoOpTracer):
            def start_span(self, name: str, *a: Any, **kw: Any) -> trace.Span:
                if name.startswith("chat ") == (fail == "root"):
                    raise RuntimeError("exporter on fire")
                return real.start_span(name, *a, **kw)

        return Tracer()


@pytest.mark.parametrize("fail", ["root", "stages"])
async def test_telemetry_that_fails_never_breaks_the_call(fail: str) -> None:
    clock = testing.FakeClock()
    p = Pipeline.default(
        instrument=TelemetryInstrument(tracer_provider=_BrokenTracerProvider(fail)),
        sleep=clock.sleep,
        clock=clock.time,
    ).replace("dispatch", testing.scripted([[RateLimited("x")], ok_script()]))
    resp = await p.acomplete(REQ)
    assert resp.text == "Paris" and resp.retries == 1


async def test_content_is_not_recorded_unless_asked(
    spans: Spans, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    await spans.pipeline([ok_script()]).acomplete(REQ)
    dumped = _everything(spans)
    assert "capital of France" not in dumped
    assert "Paris" not in dumped
    assert "be brief" not in dumped
    assert "gen_ai.input.messages" not in (spans.root().attributes or {})


@pytest.mark.parametrize("how", ["env", "setting"])
async def test_content_is_recorded_when_opted_in(
    spans: Spans, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
        instrument = spans.instrument()
    else:
        monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
        instrument = spans.instrument(capture_content=True)
    await spans.pipeline([ok_script()], instrument=instrument).acomplete(REQ)
    attrs = spans.root().attributes or {}
    assert json.loads(str(attrs["gen_ai.input.messages"])) == [
        {"role": "user", "parts": [{"type": "text", "content": "what is the capital of France?"}]}
    ]
    assert json.loads(str(attrs["gen_ai.system_instructions"])) == [
        {"type": "text", "content": "be brief"}
    ]
    assert json.loads(str(attrs["gen_ai.output.messages"])) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Paris"}],
            "finish_reason": "stop",
        }
    ]


async def test_the_api_key_never_appears(
    spans: Spans, monkeypatch: pytest.MonkeyPatch, otel_logs: pytest.LogCaptureFixture
) -> None:
    """Not in attributes, events, statuses or logs: even content capture and an error quoting it."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    leak = RateLimited(f"invalid key {SECRET} for this org")
    p = spans.pipeline([[leak], [BadRequest(f"key {SECRET} rejected")]])
    with pytest.raises(BadRequest):
        await p.acomplete(REQ)
    dumped = _everything(spans)
    assert "rejected" in dumped and "exception.stacktrace" in dumped  # the errors are there...
    assert SECRET not in dumped  # ...without the key
    telemetry_logs = [
        r.getMessage()
        for r in otel_logs.records
        if r.name.startswith(("llmpipe.telemetry", "opentelemetry"))
    ]
    assert not [m for m in telemetry_logs if SECRET in m]
    assert_no_context_errors(otel_logs)


def _everything(spans: Spans) -> str:
    """Every name, attribute, event and status of every span, as one string."""
    parts = []
    for s in spans.finished:
        parts.append(s.name)
        parts.append(repr(dict(s.attributes or {})))
        parts.append(repr(s.status.description))
        for e in s.events:
            parts.append(e.name + repr(dict(e.attributes or {})))
    return "\n".join(parts)


async def test_a_text_delta_still_reaches_the_consumer_unchanged(spans: Spans) -> None:
    p = spans.pipeline([ok_script()])
    deltas = []
    async with p.stream(REQ) as events:
        async for ev in events:
            if isinstance(ev, TextDelta):
                deltas.append(ev)
    assert deltas == [TextDelta(text="Par"), TextDelta(text="is")]
