"""A real call (real litellm, real HTTP to the fake provider) exported through the SDK's OTLP
exporters to receivers on loopback that decode it with the official protobuf classes."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from pipeline import Pipeline, Request
from pipeline.testing import FakeClock, FakeProvider, Reply
from telemetry import setup
from tests.helpers import closed_port
from tests.telemetry.receivers import GrpcReceiver, HttpReceiver, Received, walk

KEY = "sk-otlp-e2e-secret-key-42"


pytestmark = pytest.mark.usefixtures("close_litellm_clients")


async def traced_call(fake: FakeProvider) -> str:
    """One call that is rate limited once, then answers; exported by the global-free handle."""
    fake.reset()
    fake.script(
        Reply.error(429, "slow down", headers={"retry-after": "0"}), Reply.text("Hel", "lo")
    )
    handle = setup("otlp", set_global=False)
    clock = FakeClock()
    p = Pipeline.default(instrument=handle.instrument(), sleep=clock.sleep, clock=clock.time)
    req = Request(
        model="openai/fake-model",
        messages=[{"role": "user", "content": "hi"}],
        api_base=fake.base_url,
        api_key=KEY,
    )
    resp = await p.acomplete(req)
    handle.shutdown()  # flushes the batch processor: everything is at the receiver now
    handle.shutdown()  # idempotent
    return resp.text


def tree(received: list[Received]) -> list[tuple[int, str]]:
    roots = [s for s in received if s.name.startswith("chat ")]
    assert len(roots) == 1
    return sorted((depth, s.name) for depth, s in walk(received, roots[0]))


def attempt(n: int) -> list[tuple[int, str]]:
    return [
        (2, f"attempt {n}"),
        (3, "dispatch"),
        (3, "reassemble"),
        (3, "usage"),
        (3, "empty_check"),
    ]


#: the tree depth first, siblings by start time: pipeline order
IN_ORDER = [
    (0, "chat fake-model"),  # fallback (no target) and tool_compat (no tools) stand aside
    (1, "normalize"),
    (1, "cache_tag"),
    (1, "retry"),
    *attempt(1),
    *attempt(2),
]
EXPECTED_TREE = sorted(IN_ORDER)


async def test_a_real_call_over_otlp_http(fake: FakeProvider, otlp_env: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as rx:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        assert await traced_call(fake) == "Hello"
    assert set(rx.paths) == {"/v1/traces"}
    assert set(rx.content_types) == {"application/x-protobuf"}
    received = rx.spans()
    assert {(s.service, s.scope) for s in received} == {("llmpipe", "llmpipe")}
    assert tree(received) == EXPECTED_TREE
    root = next(s for s in received if s.name == "chat fake-model")
    assert [(depth, s.name) for depth, s in walk(received, root)] == IN_ORDER
    # one trace, every parent id pointing at a span of it
    assert len({s.span.trace_id for s in received}) == 1
    ids = {s.span_id for s in received}
    assert all(s.parent_id in ids for s in received if not s.name.startswith("chat "))

    assert root.span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert root.parent_id == b""
    assert root.span.status.code == Status.StatusCode.STATUS_CODE_OK
    attrs = root.attributes
    assert {k: attrs[k] for k in attrs if k.startswith("gen_ai.") and "time" not in k} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "fake-model",
        "gen_ai.request.max_tokens": 4096,
        "gen_ai.request.stream": True,
        "gen_ai.response.model": "fake-model",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.usage.cache_read.input_tokens": 0,
    }
    assert attrs["gen_ai.response.time_to_first_chunk"] > 0
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["llmpipe.retries"] == 1

    failed, ok = sorted(
        (s for s in received if s.name == "dispatch"), key=lambda s: s.span.start_time_unix_nano
    )
    assert failed.span.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert failed.attributes["error.type"] == "pipeline.errors.RateLimited"
    assert ok.span.status.code == Status.StatusCode.STATUS_CODE_OK
    assert ok.attributes["gen_ai.response.time_to_first_chunk"] > 0
    errors = sorted(
        s.name for s in received if s.span.status.code == Status.StatusCode.STATUS_CODE_ERROR
    )
    assert errors == ["attempt 1", "dispatch"]
    retry = next(s for s in received if s.name == "retry")
    [event] = [e for e in retry.span.events if e.name == "retry"]
    assert {kv.key: kv.value.string_value for kv in event.attributes}[
        "llmpipe.retry.reason"
    ] == "rate_limited"
    # the API key went to the provider, never to the collector
    assert fake.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert not any(KEY.encode() in r.SerializeToString() for r in rx.requests)


async def test_a_real_call_over_otlp_grpc(fake: FakeProvider, otlp_env: pytest.MonkeyPatch) -> None:
    with GrpcReceiver() as rx:
        otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        assert await traced_call(fake) == "Hello"
    received = rx.spans()
    assert {(s.service, s.scope) for s in received} == {("llmpipe", "llmpipe")}
    assert tree(received) == EXPECTED_TREE
    root = next(s for s in received if s.name == "chat fake-model")
    assert root.span.kind == Span.SpanKind.SPAN_KIND_CLIENT
    assert root.attributes["gen_ai.usage.output_tokens"] == 5
    statuses = sorted(s.span.status.code for s in received if s.name == "dispatch")
    assert statuses == [Status.StatusCode.STATUS_CODE_OK, Status.StatusCode.STATUS_CODE_ERROR]
    assert not any(KEY.encode() in r.SerializeToString() for r in rx.requests)


def test_no_collector_listening_is_one_warning_and_a_short_shutdown(
    otlp_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    port = closed_port()
    otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    handle = setup("otlp", set_global=False)
    assert handle.tracer_provider is not None
    for name in ("one", "two"):
        handle.tracer_provider.get_tracer("test").start_span(name).end()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        handle.shutdown(timeout_s=30)
    took = time.monotonic() - started
    # the exporter alone retries with backoff for up to its 10 s timeout, a line per retry
    assert took < 5, f"shutdown waited {took:.1f}s for a collector that is not there"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"telemetry: cannot export spans to http://127.0.0.1:{port}/v1/traces"
        " (connection refused); they are dropped"
    ]


def test_the_cli_with_no_collector_says_so_in_one_line_naming_the_endpoint(
    fake: FakeProvider,
    otlp_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from pipeline import cli

    port = closed_port()
    otlp_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    otlp_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    fake.reset()
    fake.script(Reply.text("ok"))
    args = ["--trace", "otlp", "run", "-m", "any-model", "--api-base", fake.base_url, "hi"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert out == "ok\n"
    assert err.startswith("[stop] ")
    # (in-process, log lines go to pytest's handler rather than stderr)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"telemetry: cannot export spans to http://127.0.0.1:{port}/v1/traces"
        " (connection refused); they are dropped"
    ]
