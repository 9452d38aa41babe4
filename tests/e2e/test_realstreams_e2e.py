"""Real recorded provider streams, replayed over loopback through both backends.

Every recording of ``tests/fixtures/realstreams`` (OpenAI, DeepSeek, Groq,
Mistral, Alibaba, OpenRouter and Anthropic streams, recorded by other projects'
test suites) is served as the provider sent it, one event per write, and called
as a user calls: the answer must be the expected one exactly (text, reasoning,
tool calls, stop reason, usage and its source, the model the provider named).
The OpenAI-format recordings go through both backends and must give the same
events, delta for delta; the Anthropic-format ones through litellm only (the
direct backend speaks OpenAI chat-completions).
"""

from __future__ import annotations

from typing import Any

import pytest

from pipeline import Pipeline
from pipeline.events import Event, ReasoningDelta, TextDelta
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeProvider
from tests.e2e.realstreams import answer_of, recordings, request_for, serve, wanted

NO_RETRIES = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
CASES = [
    (backend, entry)
    for entry in recordings()
    for backend in ("litellm", "openai")
    if backend == "litellm" or entry["format"] == "openai"
]


async def replay(backend: str, entry: dict[str, Any], fake: FakeProvider) -> list[Event]:
    fake.reset()
    serve(fake)
    pipe = Pipeline.default(backend=backend, policy=NO_RETRIES)
    async with pipe, pipe.stream(request_for(entry, fake)) as events:
        return [ev async for ev in events]


@pytest.mark.parametrize(("backend", "entry"), CASES, ids=[f"{b}-{e['id']}" for b, e in CASES])
async def test_each_recording_gives_its_expected_answer(
    fake: FakeProvider, backend: str, entry: dict[str, Any]
) -> None:
    fake.reset()
    serve(fake)
    async with Pipeline.default(backend=backend, policy=NO_RETRIES) as pipe:
        resp = await pipe.acomplete(request_for(entry, fake))
    assert answer_of(resp) == wanted(entry)
    assert len(fake.requests) == 1
    assert fake.requests[0].body["stream"] is True


@pytest.mark.parametrize(
    "entry", [e for e in recordings() if e["format"] == "openai"], ids=lambda e: e["id"]
)
async def test_both_backends_stream_the_same_events_delta_for_delta(
    fake: FakeProvider, entry: dict[str, Any]
) -> None:
    through_litellm = await replay("litellm", entry, fake)
    direct = await replay("openai", entry, fake)
    assert direct == through_litellm
    deltas = [e for e in direct if isinstance(e, TextDelta | ReasoningDelta)]
    assert all(e.text for e in deltas)  # each non-empty recorded delta, nothing merged
    assert "".join(e.text for e in deltas if isinstance(e, TextDelta)) == wanted(entry)["text"]
