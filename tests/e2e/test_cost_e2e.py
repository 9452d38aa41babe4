"""Cost on every answer, through real litellm over real HTTP, and against litellm's own prices."""

from __future__ import annotations

import warnings

import pytest

from pipeline import Pipeline
from pipeline.cost import cost_usd
from pipeline.events import Finish
from pipeline.testing import FakeProvider, Reply, UsageStep
from stages.dispatch.litellm import import_litellm

MODELS = [
    ("openai/gpt-4o-mini", 1000, 500, 400),
    ("gpt-4o", 12_000, 800, 6_000),
    ("anthropic/claude-sonnet-4-5", 3000, 1200, 2048),
    ("deepseek/deepseek-chat", 2000, 100, 1500),
    ("gemini/gemini-2.5-pro", 250_000, 1000, 100_000),
    ("openai/gpt-5", 40_000, 9_000, 0),
]


@pytest.mark.parametrize(("model", "inp", "out", "cached"), MODELS)
async def test_costs_agree_with_litellms_own_calculation(
    model: str, inp: int, out: int, cached: int
) -> None:
    litellm = await import_litellm()
    with warnings.catch_warnings():
        # the first cost lookup makes pydantic warn about one of litellm's TypedDicts
        # ("Items ... are using the `ReadOnly` qualifier"); as an error it would break litellm
        warnings.simplefilter("ignore", UserWarning)
        prompt, completion = litellm.cost_per_token(
            model=model, prompt_tokens=inp, completion_tokens=out, cache_read_input_tokens=cached
        )
    assert cost_usd(model, inp, out, cached) == pytest.approx(prompt + completion, rel=1e-9)


async def test_every_answer_carries_its_cost_cached_tokens_included(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply.text("Hi", usage=UsageStep(1200, 30, cached_tokens=1000)))
    async with pipe.stream(request_to(model="openai/gpt-4o-mini")) as events:
        finish = [ev async for ev in events][-1]
    assert isinstance(finish, Finish)
    assert (finish.input_tokens, finish.cached_tokens) == (1200, 1000)
    # $0.15 / M input, $0.075 / M cached input, $0.60 / M output
    assert finish.cost_usd == pytest.approx(200 * 0.15e-6 + 1000 * 0.075e-6 + 30 * 0.6e-6)
    fake.script(Reply.text("Hi", usage=UsageStep(1200, 30, cached_tokens=1000)))
    resp = await pipe.acomplete(request_to(model="openai/gpt-4o-mini"))
    assert resp.usage.cost_usd == finish.cost_usd


async def test_an_unpriced_model_answers_with_no_cost(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:
    fake.script(Reply.text("Hi"))
    resp = await pipe.acomplete(request_to(model="openai/fake-model"))
    assert resp.usage.input_tokens == 10 and resp.usage.cost_usd is None
