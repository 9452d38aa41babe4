"""A key never leaves the library: canaries of several shapes, searched everywhere.

Providers quote keys back (``Incorrect API key provided: Bearer sk-...``), in JSON
error bodies, HTML error pages, SSE error events and 200 bodies that are not a
stream. With dumps on, debug logging on (litellm's loggers too) and tracing with
content capture, each canary is searched in: every exception raised and every
exception it chains (``__cause__`` and ``__context__``, suppressed or not), their
tracebacks, every log record, every span (attributes, events, status), every dump
file, and the command line's output with and without ``--debug``.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline import Pipeline, Request, cli
from pipeline.errors import AuthenticationFailed, PipelineError
from pipeline.events import TextDelta
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Raw, Reply, Text
from stages.dispatch.litellm.faults import chain  # __cause__, __context__ (and litellm's original)
from telemetry import TelemetryInstrument

# (the key the request carries, the part of it that must never appear)
KEYS = {
    "plain": ("canary7Hq2xZ9pL4mWv", "canary7Hq2xZ9pL4mWv"),
    "openai-project": ("sk-proj-CanaryP0123456789abcdef", "CanaryP0123456789abcdef"),
    "anthropic": ("sk-ant-api03-CanaryA0123456789xyz", "CanaryA0123456789xyz"),
    "anthropic-oauth": ("sk-ant-oat01-CanaryO0123456789xyz", "CanaryO0123456789xyz"),
}
# a token that is not the request's key, quoted by a provider: masked by its shape
OTHER = ("sk-ant-oat01-OtherToken9876543210zz", "OtherToken9876543210zz")
BEARER = ("Bearer OtherBearer5f4e3d2c1b0a99", "OtherBearer5f4e3d2c1b0a99")


def sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def replies(key: str) -> dict[str, Reply]:
    quoted = f"Incorrect API key provided: Bearer {key}; also {OTHER[0]} and {BEARER[0]}"
    html = f"<html><body>key {key} {OTHER[0]}</body></html>".encode()
    return {
        "401": Reply.error(401, quoted),
        "500": Reply.error(500, quoted),
        "429": Reply.error(429, quoted, headers={"retry-after": "1"}),
        "html-502": Reply(status=502, headers={"content-type": "text/html"}, body=html),
        "html-200": Reply.raw(html, content_type="text/html"),
        "sse-error": Reply.raw(
            sse({"choices": [{"index": 0, "delta": {"content": "partial"}}]}),
            sse({"error": {"message": quoted, "type": "server_error"}}),
        ),
        "error-after-text": Reply((Text("partial"), Raw(sse({"error": {"message": quoted}})))),
    }


def exception_texts(exc: BaseException) -> list[str]:
    out = ["".join(traceback.format_exception(exc))]
    for node in chain(exc):
        out += [str(node), repr(node), repr(node.args), repr(getattr(node, "__notes__", None))]
        out.append(repr({k: v for k, v in vars(node).items() if not k.startswith("_")}))
    return out


def leaks(texts: list[str], secrets: list[str]) -> list[str]:
    return [f"{s!r} in {t[:300]!r}" for t in texts for s in secrets if s in t]


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def span_texts(exporter: InMemorySpanExporter) -> list[str]:
    return [span.to_json() for span in exporter.get_finished_spans()]


@pytest.mark.parametrize("backend", ["litellm", "openai"])
@pytest.mark.parametrize("shape", list(KEYS))
@pytest.mark.parametrize(
    "scenario", ["401", "500", "429", "html-502", "html-200", "sse-error", "error-after-text"]
)
async def test_no_canary_anywhere(
    fake: FakeProvider,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    spans: InMemorySpanExporter,
    shape: str,
    scenario: str,
    backend: str,
) -> None:
    key, secret = KEYS[shape]
    secrets = [secret, OTHER[1], BEARER[1]]
    caplog.set_level(logging.DEBUG)
    for name in ("LiteLLM", "openai", "httpx", "aiohttp", "aiohttp.client"):
        caplog.set_level(logging.DEBUG, logger=name)
    fake.respond_with(lambda r: replies(key)[scenario])
    clock = FakeClock()
    tracer = TracerProvider()
    tracer.add_span_processor(SimpleSpanProcessor(spans))
    pipe = Pipeline.default(
        backend=backend,
        sleep=clock.sleep,
        clock=clock.time,
        instrument=TelemetryInstrument(tracer_provider=tracer, capture_content=True),
        policy=RetryPolicy(rate_limit_retries=1, transient_retries=1, dump_dir=tmp_path / "dumps"),
    )
    req = Request(
        model="openai/m",
        messages=[{"role": "user", "content": "hi"}],
        api_base=fake.base_url,
        api_key=key,
    )
    seen_text = []
    with pytest.raises(PipelineError) as info:
        async with pipe.stream(req) as events:
            async for ev in events:
                if isinstance(ev, TextDelta):
                    seen_text.append(ev.text)
    tracer.shutdown()
    texts = exception_texts(info.value)
    texts += [caplog.text] + [r.getMessage() for r in caplog.records]
    texts += [r.exc_text or "" for r in caplog.records]
    texts += span_texts(spans)
    dumps = sorted((tmp_path / "dumps").glob("*.json"))
    texts += [p.read_text() for p in dumps]
    assert leaks(texts, secrets) == []
    # and the searches searched something: the errors say what happened
    assert fake.requests
    assert spans.get_finished_spans()
    if scenario == "429":
        assert dumps


async def test_an_anthropic_oauth_token_quoted_in_an_error_body_is_masked(
    fake: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    key, secret = KEYS["anthropic-oauth"]
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="LiteLLM")
    fake.respond_with(
        lambda r: Reply.error(
            401, f"OAuth token {key} has expired (so has {OTHER[0]})", type="authentication_error"
        )
    )
    req = Request(
        model="anthropic/claude-haiku-4-5",
        messages=[{"role": "user", "content": "hi"}],
        api_base=fake.root_url,
        api_key=key,
    )
    pipe = Pipeline.default(policy=RetryPolicy(transient_retries=0))
    with pytest.raises(PipelineError) as info:
        await pipe.acomplete(req)
    assert fake.requests[0].path.endswith("/v1/messages")
    texts = [*exception_texts(info.value), caplog.text]
    assert leaks(texts, [secret, OTHER[1]]) == []
    assert isinstance(info.value, AuthenticationFailed)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
@pytest.mark.parametrize("scenario", ["401", "500", "sse-error", "html-200"])
def test_the_command_line_prints_no_canary(
    fake: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    debug: bool,
    scenario: str,
) -> None:
    # the key comes from the environment, as the command line takes it
    key, secret = KEYS["plain"]
    monkeypatch.setenv("OPENAI_API_KEY", key)
    fake.respond_with(lambda r: replies(key)[scenario])
    args = ["run", "-m", "openai/fake", "--api-base", fake.base_url, "--retries", "0", "hi"]
    code = cli.main([*args[:-1], "--debug", "hi"] if debug else args)
    out, err = capsys.readouterr()
    assert code != 0
    assert "llmpipe: error:" in err
    assert ("Traceback (most recent call last)" in err) is debug
    assert leaks([out, err, caplog.text], [secret, OTHER[1], BEARER[1]]) == []
