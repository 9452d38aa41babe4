"""End-to-end fixtures: one loopback fake provider per test session, reset per test.

The ``pipe`` and ``no_retry`` pipelines send through litellm (``backend="litellm"``):
these tests are real litellm over real HTTP. The direct backend has its own
(``test_direct_e2e.py``), and both run every scenario side by side in
``test_equivalence_e2e.py`` and on the recorded streams in ``test_realstreams_e2e.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Reply
from stages.dispatch.litellm import close_loop_clients, import_litellm


@pytest.fixture(autouse=True)
async def _close_litellm_clients() -> AsyncIterator[None]:
    """Each test has its own event loop: close litellm's pooled connections with it."""
    yield
    await close_loop_clients()


@pytest.fixture(scope="session")
def _server() -> Iterator[FakeProvider]:
    with FakeProvider() as fake:
        yield fake


@pytest.fixture
def fake(_server: FakeProvider) -> Iterator[FakeProvider]:
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pipe(clock: FakeClock) -> Pipeline:
    """The default pipeline, on virtual time: backoffs are recorded, not waited."""
    return Pipeline.default(sleep=clock.sleep, clock=clock.time, backend="litellm")


@pytest.fixture
def no_retry(clock: FakeClock) -> Pipeline:
    """The default pipeline with every retry budget at zero."""
    policy = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
    return Pipeline.default(sleep=clock.sleep, clock=clock.time, policy=policy, backend="litellm")


def fields_for(fake: FakeProvider, **fields: Any) -> dict[str, Any]:
    """Request fields aimed at the fake provider, as a plain dict (not yet validated)."""
    base: dict[str, Any] = {
        "model": "openai/fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "api_base": fake.base_url,
        "api_key": "sk-test-key-not-real",
    }
    base.update(fields)
    return base


@pytest.fixture
def request_to(fake: FakeProvider):  # type: ignore[no-untyped-def]
    """``request_to(**fields)``: a Request aimed at the fake provider."""
    return lambda **fields: Request(**fields_for(fake, **fields))


async def warm_up(fake: FakeProvider) -> None:
    """litellm's first call in a process sets itself up for seconds, on the event
    loop; a test that times calls makes that call first, untimed."""
    await import_litellm()
    fake.script(Reply.text("warm"))
    async with Pipeline.default(backend="litellm") as pipe:
        await pipe.acomplete(fields_for(fake, api_key="sk-warm-up-key"))
    fake.reset()
