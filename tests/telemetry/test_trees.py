"""What a backend receives, decoded from real OTLP/HTTP: the tree of a retried call, its
statuses, its time to first chunk, and the OpenInference attributes beside GenAI.

Each call runs the default pipeline with a scripted dispatch, traced by
``telemetry.setup("otlp")`` to a receiver on loopback that decodes the
protobuf with the official classes, as a collector would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Status
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from pipeline import Pipeline, testing
from pipeline.errors import RateLimited
from pipeline.events import Chunk
from telemetry import TelemetryInstrument, setup
from tests.telemetry.receivers import GrpcReceiver, HttpReceiver, Received, walk

pytestmark = pytest.mark.e2e  # a real OTLP receiver on loopback

OK, ERROR, UNSET = (
    Status.StatusCode.STATUS_CODE_OK,
    Status.StatusCode.STATUS_CODE_ERROR,
    Status.StatusCode.STATUS_CODE_UNSET,
)
REQ: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "system": "be brief",
    "messages": [{"role": "user", "content": "what is the capital of France?"}],
    "max_tokens": 64,
    "extra": {"temperature": 0.2},
}
#: rate limited, then an empty answer, then the answer: a call retried twice
RETRIED_TWICE: list[list[Chunk | str | BaseException]] = [
    [RateLimited("slow down", status_code=429)],
    [*testing.text_chunks(finish="stop")],
    [*testing.text_chunks("Par", "is", model="gpt-4o-mini-2024")],
]
ATTEMPT = ["dispatch", "reassemble", "usage", "empty_check"]


@pytest.fixture
def rx(otlp_env: pytest.MonkeyPatch) -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        yield receiver


async def traced(
    rx: HttpReceiver,
    scripts: list[list[Chunk | str | BaseException]],
    *,
    meters: MeterProvider | None = None,
    **options: Any,
) -> list[Received]:
    """One call, exported over OTLP/HTTP; every span the receiver decoded."""
    handle = setup("otlp", set_global=False, conventions=options.pop("conventions", None))
    instrument = TelemetryInstrument(
        tracer_provider=handle.tracer_provider, meter_provider=meters, **options
    )
    clock = testing.FakeClock()
    p = Pipeline.default(instrument=instrument, sleep=clock.sleep, clock=clock.time)
    try:
        await p.replace("dispatch", testing.scripted(scripts)).acomplete(REQ)
    finally:
        handle.shutdown()
    return rx.spans()


def named(received: list[Received], name: str) -> list[Received]:
    return sorted(
        (s for s in received if s.name == name), key=lambda s: s.span.start_time_unix_nano
    )


def one(received: list[Received], name: str) -> Received:
    [span] = named(received, name)
    return span


async def test_a_call_retried_twice_reads_in_pipeline_order_with_errors_where_they_arose(
    rx: HttpReceiver,
) -> None:
    received = await traced(rx, RETRIED_TWICE)
    root = one(received, "chat gpt-4o-mini")
    # depth first, siblings by start time (as Jaeger and Phoenix order them): pipeline order
    order = [(depth, s.name) for depth, s in walk(received, root)]
    attempt = [(3, "dispatch"), (3, "reassemble"), (3, "usage")]
    assert order == [  # fallback (no target) and tool_compat (no tools) stand aside
        (0, "chat gpt-4o-mini"),
        (1, "normalize"),
        (1, "cache_tag"),
        (1, "retry"),
        *[a for n in (1, 2, 3) for a in [(2, f"attempt {n}"), *attempt, (3, "empty_check")]],
    ]
    assert len(received) == len(order)  # nothing outside the tree

    first, second, third = (one(received, f"attempt {n}") for n in (1, 2, 3))
    # error status only where the failure arose (429: dispatch; empty: empty_check) and on
    # the attempts it ended; the call succeeded after retries: an OK root
    dispatches, checks = named(received, "dispatch"), named(received, "empty_check")
    errors = {s.span.span_id for s in received if s.span.status.code == ERROR}
    assert errors == {
        dispatches[0].span_id,
        checks[1].span_id,
        first.span_id,
        second.span_id,
    }
    assert root.span.status.code == OK and third.span.status.code == OK
    assert dispatches[0].attributes["error.type"] == "pipeline.errors.RateLimited"
    assert checks[1].attributes["error.type"] == "pipeline.errors.EmptyResponse"
    assert first.attributes["error.type"] == "pipeline.errors.RateLimited"
    # the stages the 429 passed through end with their own outcome, no status
    for name in ("reassemble", "usage", "empty_check"):
        span = named(received, name)[0]
        assert span.attributes["llmpipe.stage.outcome"] == "closed", name
        assert span.span.status.code == UNSET and "error.type" not in span.attributes, name
    # the exception event only where it arose
    raised = [s.name for s in received for e in s.span.events if e.name == "exception"]
    assert sorted(raised) == ["dispatch", "empty_check"]
    # each failed attempt carries the cause and delay of the retry that follows
    [r1, r2] = [e for e in one(received, "retry").span.events if e.name == "retry"]
    for attempt_span, event, reason in ((first, r1, "rate_limited"), (second, r2, "empty")):
        attrs = attempt_span.attributes
        assert attrs["llmpipe.then"] == "retrying"
        assert attrs["llmpipe.then.reason"] == reason
        delay = {kv.key: kv.value.double_value for kv in event.attributes}["llmpipe.retry.delay_s"]
        assert attrs["llmpipe.then.delay_s"] == delay > 0
    assert "llmpipe.then" not in third.attributes
    assert [s.attributes["llmpipe.attempt"] for s in (first, second, third)] == [1, 2, 3]
    assert root.attributes["llmpipe.retries"] == 2


async def test_stage_spans_last_as_long_as_their_work(rx: HttpReceiver) -> None:
    """``normalize`` is done once it handed on the request: its span ends there, before the
    first attempt starts, not when the call ends."""
    received = await traced(rx, RETRIED_TWICE)
    root, first = one(received, "chat gpt-4o-mini"), one(received, "attempt 1")
    for name in ("normalize", "cache_tag"):
        span = one(received, name).span
        assert root.span.start_time_unix_nano <= span.start_time_unix_nano
        assert span.end_time_unix_nano <= first.span.start_time_unix_nano, name
    retry = one(received, "retry").span
    assert retry.end_time_unix_nano <= root.span.end_time_unix_nano
    # every child inside its parent, in time
    by_id = {s.span_id: s.span for s in received}
    for s in received:
        parent = by_id.get(s.parent_id)
        if parent is not None:
            assert parent.start_time_unix_nano <= s.span.start_time_unix_nano, s.name
            assert s.span.end_time_unix_nano <= parent.end_time_unix_nano, s.name


async def test_time_to_first_chunk_is_the_answers_from_the_start_of_the_call(
    rx: HttpReceiver,
) -> None:
    """Not the discarded empty attempt's first chunk: the one of the answer the consumer
    got, measured from the start of the call (the attempts and waits before it included)."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    received = await traced(rx, RETRIED_TWICE, meters=meters)
    root, third = one(received, "chat gpt-4o-mini"), named(received, "dispatch")[2]
    ttfc = root.attributes["gen_ai.response.time_to_first_chunk"]
    started = root.span.start_time_unix_nano
    assert (third.span.start_time_unix_nano - started) / 1e9 <= ttfc
    assert ttfc <= (root.span.end_time_unix_nano - started) / 1e9
    # the discarded attempt got its first chunk earlier; its dispatch span says so
    empty = named(received, "dispatch")[1]
    assert (empty.span.end_time_unix_nano - started) / 1e9 < ttfc
    data = reader.get_metrics_data()
    assert data is not None
    [point] = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "gen_ai.client.operation.time_to_first_chunk"
        for p in m.data.data_points
    ]
    assert (point.count, point.sum) == (1, pytest.approx(ttfc))  # type: ignore[attr-defined]
    meters.shutdown()


def _openinference(attrs: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v
        for k, v in attrs.items()
        if k.startswith(("openinference.", "llm.", "input.", "output."))
    }


CONTENT = ("input.value", "output.value", "llm.input_messages.", "llm.output_messages.")


async def test_openinference_attributes_beside_genai(rx: HttpReceiver) -> None:
    received = await traced(rx, RETRIED_TWICE)
    root = one(received, "chat gpt-4o-mini")
    attrs = _openinference(root.attributes)
    assert json.loads(attrs.pop("llm.invocation_parameters")) == {
        "max_tokens": 64,
        "stream": True,
        "temperature": 0.2,
    }
    assert attrs == {
        "openinference.span.kind": "LLM",
        "llm.model_name": "gpt-4o-mini-2024",  # the model that answered
        "llm.provider": "openai",
        "llm.system": "openai",
        "llm.token_count.prompt": 10,
        "llm.token_count.completion": 5,
        "llm.token_count.total": 15,
        "llm.token_count.prompt_details.cache_read": 0,
    }
    assert root.attributes["gen_ai.usage.output_tokens"] == 5  # GenAI still there
    # every stage and attempt span is a CHAIN
    assert {s.attributes.get("openinference.span.kind") for s in received if s is not root} == {
        "CHAIN"
    }
    # no content without opting in
    assert not [k for s in received for k in s.attributes if k.startswith(CONTENT)]


async def test_openinference_content_only_with_capture_on(rx: HttpReceiver) -> None:
    received = await traced(
        rx, [[*testing.text_chunks("Par", "is")]], capture_content=True, conventions="openinference"
    )
    attrs = one(received, "chat gpt-4o-mini").attributes
    content = {k: v for k, v in attrs.items() if k.startswith(CONTENT)}
    assert json.loads(content.pop("input.value")) == {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "what is the capital of France?"},
        ]
    }
    assert content == {
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": "be brief",
        "llm.input_messages.1.message.role": "user",
        "llm.input_messages.1.message.content": "what is the capital of France?",
        "output.value": "Paris",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Paris",
    }
    assert attrs["input.mime_type"] == "application/json"
    assert attrs["output.mime_type"] == "text/plain"
    assert "gen_ai.input.messages" in attrs  # the GenAI content attributes too


async def test_genai_alone_on_request_leaves_success_unset(
    rx: HttpReceiver, otlp_env: pytest.MonkeyPatch
) -> None:
    """``conventions="genai"`` (or the variable): no OpenInference attribute, and success
    left unset as OpenTelemetry asks of instrumentation libraries; errors still ERROR."""
    otlp_env.setenv("LLMPIPE_TRACE_CONVENTIONS", "genai")
    received = await traced(rx, RETRIED_TWICE, capture_content=True)
    assert not [k for s in received for k in _openinference(s.attributes)]
    assert one(received, "chat gpt-4o-mini").span.status.code == UNSET
    statuses = {s.span.status.code for s in received}
    assert statuses == {UNSET, ERROR}


def test_unknown_conventions_are_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown tracing conventions 'openlit'"):
        TelemetryInstrument(conventions="openlit")
    with pytest.raises(ValueError, match="use genai, openinference, or both"):
        setup("console", set_global=False, conventions="")


async def three_calls_with_metrics(
    otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> list[tuple[str, str]]:
    """Three traced calls with metrics on, each followed by an export; the warnings said."""
    otlp_env.setenv("OTEL_METRICS_EXPORTER", "otlp")
    handle = setup("otlp", set_global=False)
    assert handle.meter_provider is not None
    clock = testing.FakeClock()
    p = Pipeline.default(instrument=handle.instrument(), sleep=clock.sleep, clock=clock.time)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # three export intervals, each refused
            script = testing.scripted([[*testing.text_chunks("hi")]])
            await p.replace("dispatch", script).acomplete(REQ)
            handle.meter_provider.force_flush()
        handle.shutdown()
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_collector_without_metrics_is_one_warning_not_one_per_export(
    rx: HttpReceiver, otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    said = await three_calls_with_metrics(otlp_env, caplog)
    assert rx.paths.count("/v1/metrics") >= 3
    assert said == [
        (
            "WARNING",
            f"telemetry: the collector at {rx.url}/v1/metrics has no metrics endpoint"
            " (HTTP 404), as Phoenix and Jaeger have none; metrics are not exported"
            " (OTEL_METRICS_EXPORTER=none stops trying; spans are not affected)",
        )
    ]
    assert len(named(rx.spans(), "chat gpt-4o-mini")) == 3  # the spans all arrived


async def test_over_grpc_too_a_collector_without_metrics_is_one_warning(
    otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The gRPC receiver serves traces only: metrics get ``UNIMPLEMENTED``, as from Jaeger."""
    with GrpcReceiver() as grpc_rx:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc_rx.url)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        said = await three_calls_with_metrics(otlp_env, caplog)
        received = grpc_rx.spans()
    assert len(said) == 1, said
    level, message = said[0]
    assert level == "WARNING"
    assert message.startswith(f"telemetry: the collector at {grpc_rx.url} has no metrics endpoint")
    assert "(gRPC UNIMPLEMENTED)" in message
    assert len(named(received, "chat gpt-4o-mini")) == 3  # the spans all arrived


def test_the_warning_is_said_once_not_once_an_export_interval(rx: HttpReceiver) -> None:
    """Ten minutes of exports, each refused with a 404: one warning, not one a minute."""
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    from telemetry.flush import EXPORTER_LOGGERS, ExportReport

    now = [0.0]
    url = f"{rx.url}/v1/metrics"
    report = ExportReport({"metrics": url, "spans": f"{rx.url}/v1/traces"}, clock=lambda: now[0])
    loggers = [logging.getLogger(name) for name in EXPORTER_LOGGERS]
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=url), export_interval_millis=3_600_000
    )
    meters = MeterProvider(metric_readers=[reader])
    counter = meters.get_meter("test").create_counter("calls")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    for logger in loggers:
        logger.addFilter(report)
        logger.addHandler(handler)
    try:
        for _ in range(10):
            counter.add(1)
            meters.force_flush()
            now[0] += 61.0  # a minute and more: past the once-a-minute report of other failures
    finally:
        meters.shutdown()
        for logger in loggers:
            logger.removeFilter(report)
            logger.removeHandler(handler)
    assert rx.paths.count("/v1/metrics") >= 10
    said = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(said) == 1, said
    assert "has no metrics endpoint (HTTP 404)" in said[0]
    assert not report.failed.is_set()  # spans' last flush is not cut short by it
