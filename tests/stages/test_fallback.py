"""The fallback segment over function-driven backends, and its pure parts (plan, cool-downs)."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.context import Context
from pipeline.cost import PriceTable
from pipeline.errors import (
    BadRequest,
    ContentFiltered,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    StreamInterrupted,
    TargetCoolingDown,
)
from pipeline.events import Chunk, Event, FallingBack, TextDelta
from pipeline.fallbacks import DEFAULT_ON, FallbackPolicy, Target
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FunctionBackend
from stages.dispatch import dispatch
from stages.fallback import fallback
from stages.fallback.cooldown import Cooldowns, Health, target_key
from stages.fallback.plan import make_plan, pick
from stages.reassemble import reassemble

MSGS = [{"role": "user", "content": "hi"}]
NO_RETRIES = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
EMPTY_TABLE = PriceTable({})


def req(**fields: Any) -> Request:
    return Request(**{"model": "openai/a", "messages": MSGS, **fields})


class Models:
    """A backend answering per model: a failure to raise, or text."""

    def __init__(self, **answers: BaseException | str) -> None:
        self.answers = answers
        self.backend = FunctionBackend(self.answer)

    def answer(self, request: Request, ctx: Context) -> str:
        got = self.answers[request.model.split("/")[-1]]
        if isinstance(got, BaseException):
            raise got
        return got

    @property
    def sent(self) -> list[str]:
        return [r.model.split("/")[-1] for r in self.backend.calls]


def pipe(models: Models, *targets: str, **options: Any) -> Pipeline:
    clock = FakeClock()
    options.setdefault("policy", NO_RETRIES)
    return Pipeline.default(
        backend=models.backend,
        fallbacks=[Target(model=f"openai/{t}") for t in targets],
        sleep=clock.sleep,
        clock=clock.time,
        **options,
    )


async def events_of(p: Pipeline, request: Request) -> list[Event]:
    async with p.stream(request) as events:
        return [ev async for ev in events]


# --- the policy at work --------------------------------------------------------------------------


async def test_content_filtered_moves_on_only_when_opted_in() -> None:
    models = Models(a=ContentFiltered("refused by policy"), b="from b")
    with pytest.raises(ContentFiltered):
        await pipe(models, "b").acomplete(req())
    assert models.sent == ["a"]
    opted = FallbackPolicy(on=DEFAULT_ON | {"content_filtered"})
    resp = await pipe(models, "b", fallback_policy=opted).acomplete(req())
    assert resp.text == "from b"
    assert models.sent == ["a", "a", "b"]


@pytest.mark.parametrize(
    "error",
    [InvalidRequest("messages", "bad"), BadRequest("unsupported parameter", status_code=400)],
    ids=["InvalidRequest", "BadRequest"],
)
async def test_requests_the_provider_cannot_take_never_move_on(error: Exception) -> None:
    models = Models(a=error, b="from b")
    with pytest.raises(type(error)):
        await pipe(models, "b").acomplete(req())
    assert models.sent == ["a"]


async def test_targets_are_tried_in_order_and_each_switch_is_announced() -> None:
    models = Models(a=ProviderUnavailable("a down"), b=RateLimited("b busy"), c="from c")
    events = await events_of(pipe(models, "b", "c"), req())
    assert [e for e in events if isinstance(e, FallingBack)] == [
        FallingBack(from_model="openai/a", to_model="openai/b", reason="unavailable"),
        FallingBack(from_model="openai/b", to_model="openai/c", reason="rate_limited"),
    ]
    assert models.sent == ["a", "b", "c"]


async def test_after_content_no_target_is_tried_even_without_a_retry_segment() -> None:
    def answer(request: Request, ctx: Context) -> Any:
        if request.model == "openai/a":
            yield Chunk(text="half an ans")
            raise ProviderUnavailable("dropped")
        yield Chunk(text="whole")

    backend = FunctionBackend(answer)
    # a pipeline of its own: the fallback segment straight over dispatch, no retry segment
    p = Pipeline([fallback(dispatch(backend), reassemble(), targets=[Target(model="openai/b")])])
    with pytest.raises(StreamInterrupted) as info:
        await p.acomplete(req())
    assert info.value.partial_text == "half an ans"
    assert [r.model for r in backend.calls] == ["openai/a"]


async def test_each_target_is_shaped_for_its_own_provider() -> None:
    """normalize and cache_tag run per target: only Anthropic gets cache_control."""
    seen: list[Request] = []

    def answer(request: Request, ctx: Context) -> str:
        seen.append(request)
        if request.model.startswith("openai/"):
            raise ProviderUnavailable("down")
        return "ok"

    p = Pipeline.default(
        backend=FunctionBackend(answer),
        policy=NO_RETRIES,
        fallbacks=[{"model": "anthropic/claude-x", "extra": {"temperature": 0.1}}],
    )
    await p.acomplete(req(system="be brief", extra={"seed": 7}))
    first, second = seen
    assert "cache_control" not in first.messages[0]
    assert second.messages[0]["cache_control"] == {"type": "ephemeral"}
    assert second.extra == {"seed": 7, "temperature": 0.1}
    assert second.fallbacks is None


# --- the plan --------------------------------------------------------------------------------


def test_the_plan_follows_priority_then_the_list() -> None:
    targets = [
        Target(model="b"),
        Target(model="c", priority=0),
        Target(model="d", priority=1),
    ]
    plan = make_plan(req(), targets, FallbackPolicy(), EMPTY_TABLE)
    # a (0), c (0: after a, its place in the list), b (1), d (1)
    assert [p.request.model for p in plan] == ["openai/a", "c", "b", "d"]
    assert [p.index for p in plan] == [0, 1, 2, 3]


def test_shuffle_mixes_only_targets_of_equal_priority() -> None:
    targets = [Target(model="b", priority=0), Target(model="c", priority=5)]
    policy = FallbackPolicy(order="shuffle")
    plan = make_plan(req(), targets, policy, EMPTY_TABLE, shuffle=lambda xs: xs.reverse())
    assert [p.request.model for p in plan] == ["b", "openai/a", "c"]


async def test_shuffle_spreads_calls_over_equal_targets() -> None:
    models = Models(a="from a", b="from b")
    p = Pipeline.default(
        backend=models.backend,
        fallbacks=[Target(model="openai/b", priority=0)],
        fallback_policy=FallbackPolicy(order="shuffle"),
    )
    answers = Counter([(await p.acomplete(req())).text for _ in range(60)])
    assert set(answers) == {"from a", "from b"}  # each half the time: 2**-59 to see only one


def test_windows_come_from_the_target_or_the_price_table() -> None:
    table = PriceTable({"gpt-4o-mini": b'{"max_input_tokens": 128000}'})  # type: ignore[dict-item]
    plan = make_plan(
        req(model="openai/gpt-4o-mini"),
        [Target(model="local", max_input_tokens=4096), Target(model="unknown")],
        FallbackPolicy(),
        table,
    )
    assert [p.window for p in plan] == [128000, 4096, None]


def test_pick_skips_cooling_targets_and_small_windows() -> None:
    plan = make_plan(
        req(),
        [Target(model="small", max_input_tokens=1000), Target(model="big", max_input_tokens=9000)],
        FallbackPolicy(),
        EMPTY_TABLE,
    )
    never: set[str] = set()
    assert pick(plan, 0, None, lambda r: r.model in never) is plan[0]
    assert pick(plan, 1, 1000, lambda r: False) is plan[2]  # "small" is not larger than 1000
    assert pick(plan, 1, 9000, lambda r: False) is None
    assert pick(plan, 0, None, lambda r: r.model == "openai/a") is plan[1]
    # everyone cooling down: the first is tried anyway
    assert pick(plan, 0, None, lambda r: True) is plan[0]


# --- cool-downs ------------------------------------------------------------------------------


POLICY = FallbackPolicy(cooldown_after=3, cooldown_window_s=60.0, cooldown_s=30.0)


def test_k_failures_within_the_window_cool_a_target_down() -> None:
    c = Cooldowns()
    assert not c.failed("t", 0.0, POLICY, None)
    assert not c.failed("t", 10.0, POLICY, None)
    assert c.failed("t", 20.0, POLICY, None)
    assert c.remaining("t", 20.0) == 30.0
    assert c.remaining("t", 49.0) == 1.0
    assert c.remaining("t", 50.0) == 0.0
    assert c.remaining("other", 20.0) == 0.0
    # after the cool-down the count starts again
    assert not c.failed("t", 51.0, POLICY, None)


def test_failures_outside_the_window_do_not_count() -> None:
    c = Cooldowns()
    c.failed("t", 0.0, POLICY, None)
    c.failed("t", 50.0, POLICY, None)
    assert not c.failed("t", 61.0, POLICY, None)  # the one at 0 has left the window
    assert c.failed("t", 62.0, POLICY, None)


def test_retry_after_cools_down_at_once_for_that_long_up_to_the_cap() -> None:
    c = Cooldowns()
    assert c.failed("t", 0.0, POLICY, 45.0)
    assert c.remaining("t", 0.0) == 45.0
    capped = Cooldowns()
    capped.failed("t", 0.0, FallbackPolicy(max_cooldown_s=100.0), 3600.0)
    assert capped.remaining("t", 0.0) == 100.0


def test_cool_downs_can_be_turned_off() -> None:
    c = Cooldowns()
    off = FallbackPolicy(cooldown_after=0)
    for now in range(10):
        assert not c.failed("t", float(now), off, 60.0)
    assert c.remaining("t", 9.0) == 0.0


def test_failures_from_many_threads_are_each_counted_once() -> None:
    c = Cooldowns()
    policy = FallbackPolicy(cooldown_after=400, cooldown_window_s=1e9)
    tripped: list[bool] = []
    lock = threading.Lock()

    def fail() -> None:
        for _ in range(100):
            t = c.failed("t", 1.0, policy, None)
            with lock:
                tripped.append(t)

    threads = [threading.Thread(target=fail) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # exactly the 400th failure cooled it down; none before it
    assert tripped.count(True) == 1
    assert c.remaining("t", 1.0) == 30.0


def test_a_cooling_target_is_refused_only_when_there_is_somewhere_else_to_go() -> None:
    c = Cooldowns()
    request = req(api_key="sk-target-key-000000001")
    c.failed(target_key(request), 0.0, POLICY, 30.0)
    alone = Health(c, request, POLICY, lambda: 1.0, lambda: False)
    alone.admit()  # nowhere else: it is tried anyway
    assert not alone.should_leave()
    with pytest.raises(TargetCoolingDown) as info:
        Health(c, request, POLICY, lambda: 1.0, lambda: True).admit()
    assert info.value.seconds == 29.0
    assert "sk-target-key" not in target_key(request)


def test_only_an_unwell_deployment_counts() -> None:
    c = Cooldowns()
    health = Health(c, req(), FallbackPolicy(cooldown_after=1), lambda: 0.0, lambda: True)
    health.failed(ContentFiltered("refused"))
    health.failed(InvalidRequest("x", "bad"))
    assert c.remaining(target_key(req()), 0.0) == 0.0
    health.failed(ProviderUnavailable("503"))
    assert c.remaining(target_key(req()), 0.0) == 30.0


async def test_a_call_waiting_on_a_cooling_target_moves_on_instead_of_waiting() -> None:
    """A 429 with Retry-After pauses the endpoint; calls queued behind it go elsewhere."""
    clock = FakeClock()
    models = Models(b="from b")
    first = True

    def answer(request: Request, ctx: Context) -> str:
        nonlocal first
        if request.model == "openai/a" and first:
            first = False
            raise RateLimited("slow down", status_code=429, headers={"retry-after": "50"})
        return models.answer(request, ctx)

    p = Pipeline.default(
        backend=FunctionBackend(answer),
        # an endpoint of its own: targets on one endpoint share its gate (and its pauses)
        fallbacks=[{"model": "openai/b", "api_base": "http://b.example:8000/v1"}],
        sleep=clock.sleep,
        clock=clock.time,
    )
    answers = [await p.acomplete(req()) for _ in range(3)]
    assert [a.text for a in answers] == ["from b"] * 3
    assert clock.sleeps == []  # nobody waited out the 50 s
    assert [e for e in await events_of(p, req()) if isinstance(e, TextDelta)] == [
        TextDelta(text="from b")
    ]
