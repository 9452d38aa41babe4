"""litellm's exceptions as ``pipeline.errors``: the closed-client case (the rest is e2e)."""

from __future__ import annotations

import pytest

from pipeline import Pipeline, testing
from pipeline.errors import ClientClosed, ProviderUnavailable
from pipeline.testing import FakeClock, text_chunks
from stages.dispatch.litellm import import_litellm
from stages.dispatch.litellm.errors import translate
from tests.helpers import make_request


async def test_a_closed_client_is_not_a_provider_failure() -> None:
    litellm = await import_litellm()
    wrapped = litellm.InternalServerError(
        message="OpenAIException - Cannot send a request, as the client has been closed.",
        llm_provider="openai",
        model="gpt-4o-mini",
    )
    err = translate(wrapped, make_request())
    assert isinstance(err, ClientClosed)
    bare = translate(
        RuntimeError("Cannot send a request, as the client has been closed."), make_request()
    )
    assert isinstance(bare, ClientClosed)
    other = litellm.InternalServerError(message="overloaded", llm_provider="openai", model="m")
    assert isinstance(translate(other, make_request()), ProviderUnavailable)


async def test_a_closed_client_is_raised_at_once_not_retried() -> None:
    clock = FakeClock()
    dispatch = testing.scripted([[ClientClosed("closed")], text_chunks("never")])
    p = Pipeline.default(sleep=clock.sleep, clock=clock.time).replace("dispatch", dispatch)
    with pytest.raises(ClientClosed):
        await p.acomplete(make_request())
    assert (len(dispatch.calls), clock.sleeps) == (1, [])
