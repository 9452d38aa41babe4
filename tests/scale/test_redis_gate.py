"""The per-endpoint gate in a real Redis: shared waits, the bucket, and life without Redis.

Two pipelines stand for two processes (each has its own shared state, so the
only thing they share is Redis). Sleeps are a ``FakeClock``'s, so nothing
here waits for real: what is asserted is how long each call was told to wait,
which the Redis scripts compute from the server's clock.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from pipeline import Pipeline
from pipeline.context import SharedState
from pipeline.errors import RateLimited
from pipeline.policy import RetryPolicy
from pipeline.request import Request
from pipeline.testing import FakeClock, scripted, text_chunks
from stages.gate import select_gate
from tests.helpers import make_ctx
from tests.scale.servers import free_port


@pytest.fixture
async def shared() -> AsyncIterator[list[SharedState]]:
    """Shared states whose per-loop Redis clients are closed after the test, pass or fail."""
    states: list[SharedState] = []
    yield states
    for state in states:
        for close in state.closables():
            await close()


def endpoint() -> str:
    """A fresh endpoint per test, so tests never share Redis keys."""
    return f"http://gate-{uuid.uuid4().hex[:8]}.test/v1"


def request(base: str, prompt: str = "hi") -> Request:
    return Request(model="openai/m", messages=[{"role": "user", "content": prompt}], api_base=base)


def pipe(scripts: list[list[object]], clock: FakeClock, **policy: object) -> Pipeline:
    return Pipeline.default(
        sleep=clock.sleep,
        clock=clock.time,
        policy=RetryPolicy(jitter=False, **policy),  # type: ignore[arg-type]
    ).replace("dispatch", scripted(scripts))  # type: ignore[arg-type]


async def test_a_429_in_one_process_makes_another_wait_on_its_own_clock(
    redis_url: str, shared: list[SharedState]
) -> None:
    base = endpoint()
    limited = RateLimited("slow down", status_code=429, headers={"retry-after": "1.5"})
    a_clock, b_clock = FakeClock(), FakeClock(start=1_000_000.0)  # clocks that disagree
    a = pipe([[limited], text_chunks("a")], a_clock, gate=redis_url)
    b = pipe([text_chunks("b")], b_clock, gate=redis_url)
    shared += [a.context(request(base)).shared, b.context(request(base)).shared]
    assert (await a.acomplete(request(base))).text == "a"
    assert a_clock.sleeps[0] == 1.5  # its own retry wait
    assert (await b.acomplete(request(base))).text == "b"
    # b never saw the 429: Redis told it to wait (1.5 s less the few ms since)
    assert len(b_clock.sleeps) == 1
    assert 1.2 < b_clock.sleeps[0] <= 1.5


async def test_without_the_shared_gate_the_other_process_does_not_wait(redis_url: str) -> None:
    # The same two calls with in-process gates: the control for the test above.
    base = endpoint()
    limited = RateLimited("slow down", status_code=429, headers={"retry-after": "1.5"})
    a_clock, b_clock = FakeClock(), FakeClock()
    a = pipe([[limited], text_chunks("a")], a_clock, gate="local")
    b = pipe([text_chunks("b")], b_clock, gate="local")
    await a.acomplete(request(base))
    await b.acomplete(request(base))
    assert b_clock.sleeps == []


async def test_a_shorter_retry_after_never_shortens_a_longer_block(
    redis_url: str, shared: list[SharedState]
) -> None:
    base = endpoint()
    clock = FakeClock()
    ctx = make_ctx(request(base), policy=RetryPolicy(gate=redis_url))
    other_ctx = make_ctx(request(base), policy=RetryPolicy(gate=redis_url))
    shared += [ctx.shared, other_ctx.shared]
    gate = select_gate(ctx, request(base))
    await gate.pause(2.0, clock.time)
    await gate.pause(0.5, clock.time)
    other = FakeClock()  # another process: only Redis knows about the block
    async with select_gate(other_ctx, request(base)).slot(other.time, other.sleep):
        pass
    assert len(other.sleeps) == 1 and 1.8 < other.sleeps[0] <= 2.0


async def test_the_bucket_lets_a_burst_through_then_spaces_calls_at_the_rate(
    redis_url: str, shared: list[SharedState]
) -> None:
    base = endpoint()
    policy = RetryPolicy(gate=redis_url, rate_per_s=10, burst=3)
    clocks = [FakeClock() for _ in range(6)]
    contexts = [make_ctx(request(base), policy=policy) for _ in clocks]  # 6 "processes"
    shared += [ctx.shared for ctx in contexts]
    for ctx, clock in zip(contexts, clocks, strict=True):
        async with select_gate(ctx, request(base)).slot(clock.time, clock.sleep):
            pass
    waits = [sum(c.sleeps) for c in clocks]
    assert waits[:3] == [0, 0, 0]
    # turns 4, 5, 6 are 0.1 s apart (less the real ms between the calls)
    assert waits[3:] == pytest.approx([0.1, 0.2, 0.3], abs=0.05)


async def test_the_in_process_bucket_follows_the_same_rule() -> None:
    base = endpoint()
    clock = FakeClock()
    p = pipe([text_chunks(str(i)) for i in range(6)], clock, rate_per_s=10, burst=3)
    await asyncio.gather(*(p.acomplete(request(base)) for _ in range(6)))
    assert clock.now == pytest.approx(0.3)  # 3 at once, then one every 0.1 s


async def test_unreachable_redis_costs_one_warning_and_no_call(
    caplog: pytest.LogCaptureFixture, shared: list[SharedState]
) -> None:
    dead = f"redis://:secret-password@127.0.0.1:{free_port()}/0"  # nothing listens there
    base = endpoint()
    limited = RateLimited("slow down", status_code=429, headers={"retry-after": "1"})
    clock = FakeClock()
    p = pipe(
        [[limited], *(text_chunks(str(i)) for i in range(5))], clock, gate=dead, max_in_flight=2
    )
    shared.append(p.context(request(base)).shared)
    with caplog.at_level(logging.WARNING, logger="llmpipe.gate"):
        texts = [(await p.acomplete(request(base))).text for _ in range(5)]
    assert texts == ["0", "1", "2", "3", "4"]
    warnings = [r for r in caplog.records if r.name == "llmpipe.gate"]
    assert len(warnings) == 1
    assert "in-process gate" in warnings[0].getMessage()
    assert "127.0.0.1" in warnings[0].getMessage()
    assert "secret-password" not in caplog.text


def test_the_policy_refuses_a_gate_it_cannot_use() -> None:
    with pytest.raises(ValueError, match="gate"):
        RetryPolicy(gate="memcached://x")
    assert "secret" not in repr(RetryPolicy(gate="redis://:secret@h:1/0"))
