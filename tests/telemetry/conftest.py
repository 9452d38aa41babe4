"""Telemetry fixtures: an SDK tracer provider of the test's own, exporting to memory.

Nothing here touches OpenTelemetry's global providers: each test hands its
provider to the pipeline's instrument, so tests stay independent.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline import Pipeline, testing
from pipeline.testing import FakeClock, FakeProvider
from telemetry import TelemetryInstrument

SECRET = "sk-test-secret-0123456789"


class Spans:
    """The spans a test's own tracer provider finished."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def finished(self) -> Sequence[ReadableSpan]:
        return self.exporter.get_finished_spans()

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.finished if s.name == name]

    def one(self, name: str) -> ReadableSpan:
        found = self.named(name)
        assert len(found) == 1, (
            f"{len(found)} spans named {name!r}: {[s.name for s in self.finished]}"
        )
        return found[0]

    def root(self) -> ReadableSpan:
        roots = [s for s in self.finished if s.name.startswith("chat ")]
        assert len(roots) == 1, [s.name for s in self.finished]
        return roots[0]

    def instrument(self, **options: Any) -> TelemetryInstrument:
        return TelemetryInstrument(tracer_provider=self.provider, **options)

    def pipeline(self, scripts: list[testing.Script], **options: Any) -> Pipeline:
        """The default pipeline, traced, on virtual time, with a scripted dispatch."""
        clock = FakeClock()
        instrument = options.pop("instrument", None) or self.instrument()
        p = Pipeline.default(instrument=instrument, sleep=clock.sleep, clock=clock.time, **options)
        return p.replace("dispatch", testing.scripted(scripts))


@pytest.fixture
def spans() -> Iterator[Spans]:
    s = Spans()
    yield s
    s.provider.shutdown()


@pytest.fixture(scope="session")
def _fake_server() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def fake(_fake_server: FakeProvider) -> FakeProvider:
    """The loopback fake provider, reset (for the tests that call through real litellm)."""
    _fake_server.reset()
    return _fake_server


@pytest.fixture
async def close_litellm_clients() -> AsyncIterator[None]:
    """Each test has its own event loop: close litellm's pooled connections with it."""
    yield
    from stages.dispatch.litellm import close_loop_clients

    await close_loop_clients()


@pytest.fixture
def otlp_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The ``OTEL_*`` variables a test sets for ``telemetry.setup``, and only those."""
    for name in (
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_METRICS_EXPORTER",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        "LLMPIPE_TRACE_CONVENTIONS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    return monkeypatch


@pytest.fixture
def otel_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, OpenTelemetry's included ("Failed to detach context" is an error log)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_no_context_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [
        r.getMessage()
        for r in caplog.records
        if "detach" in r.getMessage().lower()
        or "already ended" in r.getMessage().lower()
        or "ended span" in r.getMessage().lower()
    ]
    assert bad == []


def assert_each_span_ended_once(finished: Sequence[ReadableSpan]) -> None:
    ids = [s.context.span_id for s in finished if s.context]
    assert len(ids) == len(set(ids)), "a span was exported twice"
    assert all(s.end_time is not None for s in finished)
