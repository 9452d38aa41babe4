"""Usage limits: each limit refuses the next request before it is sent, never mid-stream.

The pipeline is the default one over a scripted backend (the real dispatch,
retry, usage and fallback stages), so what is counted is what those stages
really send and report.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.errors import ProviderUnavailable, UsageLimitExceeded
from pipeline.events import Chunk
from pipeline.fallbacks import Target
from pipeline.limits import UsageLimits, UsageMeter, UsageTotals, shown_limit
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FunctionBackend, ScriptedBackend, text_chunks

MINI = "openai/gpt-4o-mini"  # $0.15 / M input, $0.60 / M output in litellm's table


def request(model: str = MINI, **fields: Any) -> Request:
    return Request(model=model, messages=[{"role": "user", "content": "hi"}], **fields)


def pipe_over(backend: Any, limits: UsageLimits | UsageMeter, **options: Any) -> Pipeline:
    clock = FakeClock()
    return Pipeline.default(
        backend=backend, limits=limits, sleep=clock.sleep, clock=clock.time, **options
    )


def answers(n: int, usage: tuple[int, int] = (10, 5)) -> ScriptedBackend:
    return ScriptedBackend([text_chunks("ok", usage=usage) for _ in range(n)])


@pytest.mark.parametrize(
    ("limits", "usage", "allowed", "limit"),
    [
        (UsageLimits(max_requests=3), (10, 5), 3, "requests"),
        (UsageLimits(max_input_tokens=25), (10, 5), 3, "input_tokens"),  # 10, 20, 30 >= 25
        (UsageLimits(max_output_tokens=10), (10, 5), 2, "output_tokens"),  # 5, 10 >= 10
        (UsageLimits(max_total_tokens=40), (10, 5), 3, "total_tokens"),  # 15, 30, 45
        # $0.0001002 a call (100 in at $0.15 / M, 142 out at $0.60 / M): 3 calls pass $0.0003
        (UsageLimits(max_cost_usd=0.0003), (100, 142), 3, "cost_usd"),
    ],
)
async def test_each_limit_refuses_the_next_request_and_sends_nothing(
    limits: UsageLimits, usage: tuple[int, int], allowed: int, limit: str
) -> None:
    backend = answers(10, usage)
    p = pipe_over(backend, limits)
    for _ in range(allowed):
        assert (await p.acomplete(request())).text == "ok"
    with pytest.raises(UsageLimitExceeded) as caught:
        await p.acomplete(request())
    assert len(backend.calls) == allowed  # the refused request was never sent
    assert caught.value.limit == limit
    assert caught.value.maximum == getattr(limits, f"max_{limit}")
    assert caught.value.used >= caught.value.maximum
    assert f"the {shown_limit(limit)} limit is reached" in str(caught.value)
    with pytest.raises(UsageLimitExceeded):  # and it stays refused
        await p.acomplete(request())
    assert len(backend.calls) == allowed


async def test_the_cost_counted_is_the_price_tables() -> None:
    p = pipe_over(answers(2, (1000, 500)), UsageLimits(max_cost_usd=1.0))
    resp = await p.acomplete(request())
    assert resp.usage.cost_usd == pytest.approx(1000 * 0.15e-6 + 500 * 0.6e-6)
    assert p.usage is not None
    assert p.usage.totals == UsageTotals(
        requests=1, input_tokens=1000, output_tokens=500, cost_usd=pytest.approx(0.00045)
    )


async def test_a_stream_that_crosses_a_limit_is_never_cut_short() -> None:
    chunks = [Chunk(text=f"{i} ") for i in range(20)] + text_chunks(usage=(10, 500))
    backend = ScriptedBackend([chunks, text_chunks("never")])
    p = pipe_over(backend, UsageLimits(max_output_tokens=100))
    resp = await p.acomplete(request())
    assert resp.text == "".join(f"{i} " for i in range(20))
    assert resp.usage.output_tokens == 500
    with pytest.raises(UsageLimitExceeded, match="output tokens"):
        await p.acomplete(request())
    assert len(backend.calls) == 1


async def test_retries_are_requests_and_a_refused_retry_is_raised_not_retried() -> None:
    backend = ScriptedBackend(
        [[ProviderUnavailable("down", status_code=503)]] * 3 + [text_chunks("late")]
    )
    p = pipe_over(backend, UsageLimits(max_requests=2))
    with pytest.raises(UsageLimitExceeded) as caught:
        await p.acomplete(request())
    assert len(backend.calls) == 2  # the first attempt and one retry; the second retry refused
    assert caught.value.limit == "requests"


async def test_a_limit_reached_never_moves_on_to_a_fallback() -> None:
    sent: list[str] = []

    def model(req: Request, ctx: object) -> str:
        sent.append(req.model)
        return "ok"

    p = pipe_over(
        FunctionBackend(model),
        UsageLimits(max_requests=1),
        fallbacks=[Target(model="openai/gpt-4o")],
    )
    await p.acomplete(request())
    with pytest.raises(UsageLimitExceeded):
        await p.acomplete(request())
    assert sent == [MINI]


async def test_an_unpriced_model_is_counted_apart_and_a_cost_limit_cannot_stop_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    p = pipe_over(answers(3), UsageLimits(max_cost_usd=0.0))
    with pytest.raises(UsageLimitExceeded):  # $0 of $0: nothing may be spent
        await p.acomplete(request())
    free = pipe_over(answers(3), UsageLimits(max_cost_usd=0.01))
    for _ in range(3):
        assert (await free.acomplete(request("openai/no-such-model"))).usage.cost_usd is None
    assert free.usage is not None
    assert free.usage.totals.unpriced == 3 and free.usage.totals.cost_usd == 0.0
    assert sum("has no known price" in r.message for r in caplog.records) == 1


def test_one_meter_counts_every_thread_and_loop_of_a_pipeline() -> None:
    backend = FunctionBackend(lambda req, ctx: "ok")
    p = pipe_over(backend, UsageLimits(max_requests=1000))
    derived = p.with_options(policy=RetryPolicy(jitter=False))  # keeps the meter

    def worker() -> None:
        for _ in range(5):
            p.complete(request())
            asyncio.run(derived.acomplete(request()))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert p.usage is derived.usage
    assert p.usage is not None and p.usage.totals.requests == 80
    assert p.usage.totals.output_tokens == 80  # "ok" estimated as one token each


def test_new_limits_start_a_new_meter_and_a_meter_can_be_shared() -> None:
    meter = UsageMeter(UsageLimits(max_requests=2), start=UsageTotals(requests=1))
    a = pipe_over(FunctionBackend(lambda req, ctx: "ok"), meter)
    b = pipe_over(FunctionBackend(lambda req, ctx: "ok"), meter)
    a.complete(request())  # the second request of the two: the start counts
    with pytest.raises(UsageLimitExceeded):
        b.complete(request())
    fresh = a.with_options(limits=UsageLimits(max_requests=5))
    assert fresh.usage is not meter and fresh.usage is not None
    assert fresh.usage.totals.requests == 0
    fresh.complete(request())


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"max_requests": -1}, "max_requests"),
        ({"max_input_tokens": 1.5}, "max_input_tokens"),
        ({"max_cost_usd": "5"}, "max_cost_usd"),
        ({"max_output_tokens": True}, "max_output_tokens"),
    ],
)
def test_limits_check_their_fields(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=f"UsageLimits.{name}"):
        UsageLimits(**fields)


def test_limits_of_the_wrong_type_are_refused() -> None:
    with pytest.raises(TypeError, match="limits must be UsageLimits or a UsageMeter"):
        Pipeline([], limits={"max_requests": 1})  # type: ignore[arg-type]
