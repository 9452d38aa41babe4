"""A second LiteLLM instrumentor, really installed and really active: one warning naming it.

OpenInference's and OpenLLMetry's instrumentors (the dev group installs both)
wrap ``litellm.acompletion``; a traced llmpipe call then warns, once per
process and instrumentor, naming it and how to turn it off. Each test turns
its instrumentor off again, so the rest of the suite sees LiteLLM unwrapped.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.testing import FakeClock, FakeProvider, Reply
from stages.dispatch.litellm import import_litellm
from telemetry.doubles import active_instrumentations
from tests.telemetry.conftest import Spans

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("close_litellm_clients")]  # real litellm


def openinference() -> Any:
    from openinference.instrumentation.litellm import LiteLLMInstrumentor

    return LiteLLMInstrumentor()


def openllmetry() -> Any:
    from opentelemetry.instrumentation.litellm import LiteLLMInstrumentor

    return LiteLLMInstrumentor()


@pytest.mark.parametrize(
    ("make", "who"),
    [
        (
            openinference,
            "OpenInference's LiteLLMInstrumentor (openinference-instrumentation-litellm)",
        ),
        (openllmetry, "OpenLLMetry's LiteLLMInstrumentor (opentelemetry-instrumentation-litellm)"),
    ],
    ids=["openinference", "openllmetry"],
)
async def test_one_warning_when_another_instrumentor_is_active(
    make: Any,
    who: str,
    fake: FakeProvider,
    spans: Spans,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    await import_litellm()
    assert active_instrumentations() == []
    instrumentor = make()
    instrumentor.instrument(tracer_provider=spans.provider)
    try:
        assert [w for w, _ in active_instrumentations()] == [who]
        clock = FakeClock()
        p = Pipeline.default(instrument=spans.instrument(), sleep=clock.sleep, clock=clock.time)
        req = Request(
            model="openai/fake-model",
            messages=[{"role": "user", "content": "hi"}],
            api_base=fake.base_url,
            api_key="sk-double-0123456789",
        )
        fake.default = Reply.text("ok")
        with caplog.at_level(logging.WARNING, logger="llmpipe.telemetry"):
            for _ in range(3):
                assert (await p.acomplete(req)).text == "ok"
        warnings = [r.getMessage() for r in caplog.records if r.name == "llmpipe.telemetry"]
        assert len(warnings) == 1, warnings
        assert warnings[0].startswith(f"telemetry: {who} is active:")
        assert "uninstrument()" in warnings[0] and "records message content" in warnings[0]
    finally:
        instrumentor.uninstrument()
    assert active_instrumentations() == []


async def test_litellm_own_otel_callback_counts_too(monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = await import_litellm()
    monkeypatch.setattr(litellm, "callbacks", ["otel"])
    assert active_instrumentations() == [
        (
            "LiteLLM's own 'otel' callback",
            "remove 'otel' from litellm.callbacks / litellm.success_callback",
        )
    ]
