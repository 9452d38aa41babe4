"""Fallbacks through real litellm over real HTTP: two fake providers, one per target.

The primary is the session's fake provider (``fake``), the fallback a
second one (``backup``) on its own port, so every assertion counts the
requests each target really received. Time is virtual (``FakeClock``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pipeline import Pipeline, Request
from pipeline.errors import (
    AuthenticationFailed,
    ContextWindowExceeded,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
)
from pipeline.events import Event, FallingBack, Finish, Retrying, TextDelta
from pipeline.fallbacks import DEFAULT_ON, FallbackPolicy, Target
from pipeline.policy import RetryPolicy
from pipeline.testing import Drop, FakeClock, FakeProvider, Reply, Stall, Text
from telemetry import TelemetryInstrument

PRIMARY = "openai/primary-model"
BACKUP = "openai/backup-model"
PRIMARY_KEY = "sk-primary-key-0000000001"
BACKUP_KEY = "sk-backup-key-00000000002"


@pytest.fixture(scope="session")
def _backup_server() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


@pytest.fixture
def backup(_backup_server: FakeProvider) -> Iterator[FakeProvider]:
    _backup_server.reset()
    _backup_server.respond_with(lambda r: Reply.text("from ", "the backup"))
    yield _backup_server
    _backup_server.reset()


def pipe_with(
    clock: FakeClock,
    backup: FakeProvider,
    *,
    policy: FallbackPolicy | None = None,
    retry: RetryPolicy | None = None,
    targets: list[Target] | None = None,
) -> Pipeline:
    if targets is None:
        targets = [Target(model=BACKUP, api_base=backup.base_url, api_key=BACKUP_KEY)]
    return Pipeline.default(
        sleep=clock.sleep,
        clock=clock.time,
        fallbacks=targets,
        fallback_policy=policy,
        policy=retry,
    )


def primary(fake: FakeProvider, **fields: Any) -> Request:
    base: dict[str, Any] = {
        "model": PRIMARY,
        "messages": [{"role": "user", "content": "hi"}],
        "api_base": fake.base_url,
        "api_key": PRIMARY_KEY,
    }
    return Request(**{**base, **fields})


async def events_of(p: Pipeline, req: Request) -> list[Event]:
    async with p.stream(req) as events:
        return [ev async for ev in events]


def text(events: list[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


# --- moving on before content ----------------------------------------------------------------


async def test_primary_503s_through_its_retries_then_the_fallback_answers(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(503, "overloaded"))
    p = pipe_with(clock, backup, policy=FallbackPolicy(cooldown_after=0))
    events = await events_of(p, primary(fake))
    assert len(fake.requests) == 4  # 1 + the 3 transient retries, then it moves on
    assert len(backup.requests) == 1
    assert [type(e).__name__ for e in events[:4]] == ["Retrying"] * 3 + ["FallingBack"]
    assert events[3] == FallingBack(from_model=PRIMARY, to_model=BACKUP, reason="unavailable")
    assert text(events) == "from the backup"
    finish = events[-1]
    assert isinstance(finish, Finish) and finish.model == "backup-model"
    # each target got its own model, endpoint and key
    assert backup.requests[0].body["model"] == "backup-model"
    assert backup.requests[0].headers["authorization"] == f"Bearer {BACKUP_KEY}"
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {PRIMARY_KEY}"}
    resp = await p.acomplete(primary(fake))
    assert (resp.text, resp.model) == ("from the backup", "backup-model")


async def test_the_cool_down_cuts_a_dead_primary_short_after_k_failures(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(503, "overloaded"))
    p = pipe_with(clock, backup)  # default: cooled down after 3 failures
    events = await events_of(p, primary(fake))
    assert (len(fake.requests), len(backup.requests)) == (3, 1)
    # the third failure cooled it down: no third wait, straight to the fallback
    assert [e.reason for e in events if isinstance(e, Retrying)] == ["transient"] * 2
    assert [e for e in events if isinstance(e, FallingBack)] == [
        FallingBack(from_model=PRIMARY, to_model=BACKUP, reason="cooling_down")
    ]


async def test_primary_drops_the_stream_before_content_then_the_fallback_answers(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply(steps=(Drop(),)))
    p = pipe_with(clock, backup, retry=RetryPolicy(transient_retries=1))
    events = await events_of(p, primary(fake))
    assert (len(fake.requests), len(backup.requests)) == (2, 1)
    assert [e for e in events if isinstance(e, FallingBack)] == [
        FallingBack(from_model=PRIMARY, to_model=BACKUP, reason="unavailable")
    ]
    assert text(events) == "from the backup"


async def test_primary_stalls_before_content_then_the_fallback_answers(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply(steps=(Stall(None),)))
    retry = RetryPolicy(transient_retries=0, first_chunk_timeout_s=0.2)
    resp = await pipe_with(clock, backup, retry=retry).acomplete(primary(fake))
    assert (resp.text, resp.model) == ("from the backup", "backup-model")
    assert (len(fake.requests), len(backup.requests)) == (1, 1)
    await fake.wait_closed(timeout=1.0)


async def test_primary_drops_after_content_raises_and_the_fallback_is_never_called(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply(steps=(Text("Hello "), Text("wor"), Drop())))
    seen: list[str] = []
    with pytest.raises(StreamInterrupted) as info:
        async with pipe_with(clock, backup).stream(primary(fake)) as events:
            async for ev in events:
                assert not isinstance(ev, FallingBack)
                if isinstance(ev, TextDelta):
                    seen.append(ev.text)
    assert seen == ["Hello ", "wor"]
    assert info.value.partial_text == "Hello wor"
    assert (len(fake.requests), len(backup.requests)) == (1, 0)


async def test_an_empty_answer_after_its_budget_moves_on(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.empty())
    resp = await pipe_with(clock, backup, retry=RetryPolicy(empty_retries=1)).acomplete(
        primary(fake)
    )
    assert resp.text == "from the backup"
    assert (len(fake.requests), len(backup.requests)) == (2, 1)


# --- context windows -------------------------------------------------------------------------


async def test_a_context_window_error_moves_on_to_the_larger_target_only(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    """gpt-4o-mini has 128k tokens in LiteLLM's table; gpt-3.5-turbo 16k; gpt-4.1 1M."""
    fake.respond_with(
        lambda r: Reply.error(400, "This model's maximum context length is 128000 tokens")
    )
    targets = [
        Target(model="openai/gpt-3.5-turbo", api_base=backup.base_url, api_key=BACKUP_KEY),
        Target(model="openai/gpt-4.1", api_base=backup.base_url, api_key=BACKUP_KEY),
    ]
    p = pipe_with(clock, backup, targets=targets)
    events = await events_of(p, primary(fake, model="openai/gpt-4o-mini"))
    assert len(fake.requests) == 1  # never retried
    assert [r.body["model"] for r in backup.requests] == ["gpt-4.1"]
    assert [e for e in events if isinstance(e, FallingBack)] == [
        FallingBack(
            from_model="openai/gpt-4o-mini", to_model="openai/gpt-4.1", reason="context_window"
        )
    ]


async def test_a_context_window_error_with_no_larger_target_is_raised(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(400, "maximum context length is 8192 tokens"))
    small = [Target(model="openai/small-model", api_base=backup.base_url, max_input_tokens=4096)]
    p = pipe_with(clock, backup, targets=small)
    with pytest.raises(ContextWindowExceeded):
        await p.acomplete(primary(fake, model="openai/gpt-4o-mini"))
    assert len(backup.requests) == 0


# --- what never moves on ---------------------------------------------------------------------


async def test_an_authentication_failure_is_raised_and_no_fallback_is_tried(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(401, "invalid api key"))
    events: list[Event] = []
    with pytest.raises(AuthenticationFailed):
        async with pipe_with(clock, backup).stream(primary(fake)) as stream:
            async for ev in stream:
                events.append(ev)
    assert (len(fake.requests), len(backup.requests)) == (1, 0)
    assert not any(isinstance(e, FallingBack) for e in events)


async def test_an_authentication_failure_moves_on_when_asked(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(401, "invalid api key"))
    policy = FallbackPolicy(on=DEFAULT_ON | {"auth"})
    resp = await pipe_with(clock, backup, policy=policy).acomplete(primary(fake))
    assert resp.model == "backup-model"
    assert (len(fake.requests), len(backup.requests)) == (1, 1)


async def test_when_every_target_fails_the_last_failure_is_raised_naming_them_all(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(503, "primary down"))
    backup.respond_with(lambda r: Reply.error(429, "backup busy"))
    retry = RetryPolicy(transient_retries=0, rate_limit_retries=0)
    with pytest.raises(RateLimited) as info:
        await pipe_with(clock, backup, retry=retry).acomplete(primary(fake))
    assert "backup busy" in str(info.value)
    assert info.value.__notes__ == [
        f"fallback: tried {PRIMARY} (unavailable), then {BACKUP} (rate_limited)"
    ]
    assert PRIMARY_KEY not in repr(info.value.__notes__)


# --- per request -----------------------------------------------------------------------------


async def test_a_request_brings_its_own_fallbacks_or_none(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(503, "down"))
    retry = RetryPolicy(transient_retries=0)
    plain = Pipeline.default(sleep=clock.sleep, clock=clock.time, policy=retry)
    own = [{"model": "openai/own-backup", "api_base": backup.base_url, "api_key": BACKUP_KEY}]
    resp = await plain.acomplete(primary(fake, fallbacks=own))
    assert resp.model == "own-backup"
    # an empty list turns off the pipeline's fallbacks for this request
    with pytest.raises(ProviderUnavailable):
        await pipe_with(clock, backup, retry=retry).acomplete(primary(fake, fallbacks=[]))
    assert [r.body["model"] for r in backup.requests] == ["own-backup"]


# --- cool-downs ------------------------------------------------------------------------------


async def test_fifty_calls_against_a_dead_primary_cost_it_k_plus_in_flight_requests(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(503, "dead"))
    in_flight, k = 5, 3
    p = pipe_with(
        clock,
        backup,
        policy=FallbackPolicy(cooldown_after=k, cooldown_s=30.0),
        retry=RetryPolicy(max_in_flight=in_flight),
    )
    answers = await asyncio.gather(*(p.acomplete(primary(fake)) for _ in range(50)))
    assert {a.model for a in answers} == {"backup-model"}
    assert len(fake.requests) <= k + in_flight, len(fake.requests)
    assert len(backup.requests) == 50
    dead_then = len(fake.requests)
    # while it cools down, every call goes straight to the fallback
    clock.now += 29.0
    events = await events_of(p, primary(fake))
    assert len(fake.requests) == dead_then
    assert events[0] == FallingBack(from_model=PRIMARY, to_model=BACKUP, reason="cooling_down")
    # when the cool-down ends, the primary is tried again (and cools down again)
    clock.now += 2.0
    fake.respond_with(lambda r: Reply.text("the primary is back"))
    resp = await p.acomplete(primary(fake))
    assert (resp.text, len(fake.requests)) == ("the primary is back", dead_then + 1)


async def test_retry_after_on_a_429_sets_the_cool_down(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(429, "slow down", headers={"retry-after": "45"}))
    p = pipe_with(clock, backup)
    events = await events_of(p, primary(fake))
    # one 429 that says "45 s" cools the primary down at once: no wait, no second request
    assert (len(fake.requests), len(backup.requests)) == (1, 1)
    assert not any(isinstance(e, Retrying) for e in events)
    assert clock.sleeps == []
    clock.now += 44.0
    await p.acomplete(primary(fake))
    assert (len(fake.requests), len(backup.requests)) == (1, 2)
    clock.now += 2.0
    fake.respond_with(lambda r: Reply.text("ok again"))
    assert (await p.acomplete(primary(fake))).text == "ok again"
    assert len(fake.requests) == 2


async def test_cool_downs_are_per_pipeline(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(429, "slow down", headers={"retry-after": "60"}))
    await pipe_with(clock, backup).acomplete(primary(fake))
    fake.respond_with(lambda r: Reply.text("fresh pipeline"))
    other = pipe_with(clock, backup)
    assert (await other.acomplete(primary(fake))).text == "fresh pipeline"


# --- telemetry -------------------------------------------------------------------------------


async def test_each_target_is_a_span_of_its_own_under_the_fallback_span(
    fake: FakeProvider, backup: FakeProvider, clock: FakeClock
) -> None:
    fake.respond_with(lambda r: Reply.error(503, "down"))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    p = Pipeline.default(
        sleep=clock.sleep,
        clock=clock.time,
        policy=RetryPolicy(transient_retries=1),
        fallbacks=[Target(model=BACKUP, api_base=backup.base_url, api_key=BACKUP_KEY)],
        instrument=TelemetryInstrument(tracer_provider=provider),
    )
    assert (await p.acomplete(primary(fake))).text == "from the backup"
    provider.shutdown()
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}

    def parent(span: ReadableSpan) -> str:
        assert span.parent is not None
        return by_id[span.parent.span_id].name

    [fb] = [s for s in spans if s.name == "fallback"]
    targets = sorted(
        (s for s in spans if s.name.startswith("target ")), key=lambda s: s.start_time or 0
    )
    assert [t.name for t in targets] == [f"target {PRIMARY}", f"target {BACKUP}"]
    assert {parent(t) for t in targets} == {"fallback"}
    assert parent(fb) == "chat primary-model"
    # the target that failed is an error; the one that answered, and the call, are not
    assert targets[0].status.status_code is StatusCode.ERROR
    assert (targets[0].attributes or {})["error.type"] == "pipeline.errors.RetriesExhausted"
    assert targets[1].status.status_code is not StatusCode.ERROR
    assert fb.status.status_code is not StatusCode.ERROR
    assert [(t.attributes or {})["llmpipe.target.index"] for t in targets] == [1, 2]
    # the failed target says what followed: the call fell back, and why
    moved = {k: v for k, v in (targets[0].attributes or {}).items() if k.startswith("llmpipe.then")}
    assert moved == {
        "llmpipe.then": "falling_back",
        "llmpipe.then.from_model": PRIMARY,
        "llmpipe.then.to_model": BACKUP,
        "llmpipe.then.reason": "unavailable",
    }
    assert "llmpipe.then" not in (targets[1].attributes or {})
    # each target's stages are its own children
    for target in targets:
        children = sorted(
            s.name for s in spans if s.parent and s.parent.span_id == target.context.span_id
        )
        assert children == ["cache_tag", "normalize", "retry"]
    # the switch is an event on the fallback span
    [event] = [e for e in fb.events if e.name == "fallback"]
    assert dict(event.attributes or {}) == {
        "llmpipe.fallback.from_model": PRIMARY,
        "llmpipe.fallback.to_model": BACKUP,
        "llmpipe.fallback.reason": "unavailable",
    }
    # neither key reached a span
    dumped = repr([(s.attributes, [e.attributes for e in s.events], s.status) for s in spans])
    assert PRIMARY_KEY not in dumped and BACKUP_KEY not in dumped
