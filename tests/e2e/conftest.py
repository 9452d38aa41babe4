"""End-to-end fixtures: one loopback fake provider per test session, reset per test."""

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
    return Pipeline.default(sleep=clock.sleep, clock=clock.time)


@pytest.fixture
def no_retry(clock: FakeClock) -> Pipeline:
    """The default pipeline with every retry budget at zero."""
    policy = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
    return Pipeline.default(sleep=clock.sleep, clock=clock.time, policy=policy)


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
    await Pipeline.default().acomplete(fields_for(fake, api_key="sk-warm-up-key"))
    fake.reset()
