"""The GenAI client metrics: token usage, operation duration, time to first chunk."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from pipeline import Pipeline, testing
from pipeline.errors import BadRequest
from telemetry import TelemetryInstrument
from tests.telemetry.conftest import Spans

REQ: dict[str, Any] = {
    "model": "anthropic/claude-x",
    "messages": [{"role": "user", "content": "hi"}],
}


def points(reader: InMemoryMetricReader) -> dict[str, list[HistogramDataPoint]]:
    data = reader.get_metrics_data()
    out: dict[str, list[HistogramDataPoint]] = {}
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            assert sm.scope.name == "llmpipe"
            for metric in sm.metrics:
                out[metric.name] = list(metric.data.data_points)  # type: ignore[arg-type]
    return out


def pipeline(instrument: TelemetryInstrument, script: list[Any]) -> Pipeline:
    clock = testing.FakeClock()
    return Pipeline.default(instrument=instrument, sleep=clock.sleep, clock=clock.time).replace(
        "dispatch", testing.scripted([script])
    )


@pytest.mark.parametrize("tracing", [False, True], ids=["metrics only", "with tracing"])
async def test_token_usage_duration_and_time_to_first_chunk(tracing: bool, spans: Spans) -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    instrument = TelemetryInstrument(
        meter_provider=meters, tracer_provider=spans.provider if tracing else None
    )
    script = testing.text_chunks("Hel", "lo", usage=(12, 7), model="claude-x-2025")
    await pipeline(instrument, script).acomplete(REQ)
    got = points(reader)
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-x",
        "gen_ai.response.model": "claude-x-2025",
    }
    tokens = {p.attributes["gen_ai.token.type"]: p for p in got["gen_ai.client.token.usage"]}  # type: ignore[index]
    assert {k: (p.sum, p.count) for k, p in tokens.items()} == {"input": (12, 1), "output": (7, 1)}
    assert all(
        dict(p.attributes or {}) == {**common, "gen_ai.token.type": k} for k, p in tokens.items()
    )
    [duration] = got["gen_ai.client.operation.duration"]
    assert dict(duration.attributes or {}) == common and duration.count == 1 and duration.sum > 0
    [ttfc] = got["gen_ai.client.operation.time_to_first_chunk"]
    assert ttfc.count == 1 and 0 < ttfc.sum <= duration.sum
    assert bool(spans.finished) is tracing
    meters.shutdown()


async def test_a_failed_call_records_its_error_type() -> None:
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    with pytest.raises(BadRequest):
        await pipeline(TelemetryInstrument(meter_provider=meters), [BadRequest("nope")]).acomplete(
            REQ
        )
    got = points(reader)
    [duration] = got["gen_ai.client.operation.duration"]
    assert (duration.attributes or {})["error.type"] == "pipeline.errors.BadRequest"
    assert "gen_ai.client.token.usage" not in got
    meters.shutdown()
