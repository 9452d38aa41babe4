"""``telemetry.setup``: exporters from arguments or ``OTEL_*``, the console tree, the globals."""

from __future__ import annotations

import io
import logging
import re
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

from pipeline import Pipeline, testing
from pipeline.errors import RateLimited
from telemetry import TelemetryHandle, setup

REQ: dict[str, Any] = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "hi"}],
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "OTEL_TRACES_EXPORTER",
        "OTEL_METRICS_EXPORTER",
        "OTEL_SDK_DISABLED",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_SERVICE_NAME",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fresh_globals(monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry's global tracer provider as in a new process (restored afterwards)."""
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


def scripted(p: Pipeline) -> Pipeline:
    clock = testing.FakeClock()
    return p.with_options(sleep=clock.sleep, clock=clock.time).replace(
        "dispatch",
        testing.scripted(
            [[RateLimited("slow down")], testing.text_chunks("Hi", model="gpt-4o-mini")]
        ),
    )


def test_nothing_is_configured_by_default() -> None:
    handle = setup()
    assert (handle.tracer_provider, handle.meter_provider) == (None, None)
    handle.shutdown()


@pytest.mark.parametrize(
    ("exporter", "env", "problem"),
    [
        ("jaeger", {}, "unknown exporter 'jaeger'"),
        (None, {"OTEL_TRACES_EXPORTER": "zipkin"}, "unknown exporter 'zipkin'"),
        ("otlp", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "http/json"),
    ],
)
def test_unsupported_settings_are_clear_errors(
    exporter: str | None, env: dict[str, str], problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ValueError, match=problem):
        setup(exporter, set_global=False)


def test_sdk_disabled_configures_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert setup("console", set_global=False).tracer_provider is None


async def test_console_prints_the_tree_of_each_call() -> None:
    out = io.StringIO()
    handle = setup("console", out=out, set_global=False)
    assert handle.tracer_provider is not None
    await scripted(Pipeline.default(instrument=handle.instrument())).acomplete(REQ)
    handle.shutdown()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("chat gpt-4o-mini  [openai]  ")
    assert "  ok  " in lines[0] and "tokens 10 in / 5 out" in lines[0] and "retries 1" in lines[0]
    assert lines[5].startswith("   │  │  · retry: rate_limited, waiting ")
    shape = [re.sub(r"(─ \S+( \d)?).*", r"\1", line) for line in lines[1:] if "· retry" not in line]
    assert shape == [
        "├─ normalize",
        "├─ cache_tag",
        "└─ retry",
        "   ├─ attempt 1",
        "   │  ├─ dispatch",
        "   │  ├─ reassemble",
        "   │  ├─ usage",
        "   │  └─ empty_check",
        "   └─ attempt 2",
        "      ├─ dispatch",
        "      ├─ reassemble",
        "      ├─ usage",
        "      └─ empty_check",
    ]
    # the error's message where it arose (dispatch), its type on the attempt; passed: closed
    assert "  error  " in lines[4] and lines[4].endswith("  RateLimited")
    assert lines[6].endswith("  RateLimited: slow down") and "  error  events 1 -> 0" in lines[6]
    assert "  closed  events 0 -> 0  self " in lines[7]
    assert all("  closed  " in line for line in lines[7:10])
    assert "attempt 2" in lines[10] and "  ok" in lines[10] and "ttfc" in lines[11]


async def test_console_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    out = io.StringIO()
    handle = setup(out=out, set_global=False)
    await scripted(Pipeline.default(instrument=handle.instrument())).acomplete(REQ)
    handle.shutdown()
    assert out.getvalue().startswith("chat gpt-4o-mini")


async def test_setup_sets_the_global_provider_once_and_the_default_pipeline_uses_it(
    fresh_globals: None, caplog: pytest.LogCaptureFixture
) -> None:
    out = io.StringIO()
    handle = setup("console", out=out)
    try:
        assert trace.get_tracer_provider() is handle.tracer_provider
        await scripted(Pipeline.default()).acomplete(REQ)  # the default instrument, global lookup
        assert out.getvalue().startswith("chat gpt-4o-mini")
        # a second setup finds a provider in place: it leaves it, and warns about nothing
        again = setup("console", out=io.StringIO())
        assert again.tracer_provider is None
        assert trace.get_tracer_provider() is handle.tracer_provider
        again.shutdown()
    finally:
        handle.shutdown()
    assert "Overriding" not in caplog.text


async def test_setup_leaves_an_applications_own_provider_alone(
    fresh_globals: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = TracerProvider()
    trace.set_tracer_provider(app)
    handle = setup("console", out=io.StringIO())
    assert isinstance(handle, TelemetryHandle) and handle.tracer_provider is None
    handle.shutdown()  # a no-op: the application's provider keeps working
    assert trace.get_tracer_provider() is app
    assert app.get_tracer("x").start_span("still alive").is_recording()
    assert "Overriding" not in caplog.text
    app.shutdown()
