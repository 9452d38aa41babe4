"""Provider failures arrive as typed ``pipeline.errors``, after exactly one request."""

import pytest

from pipeline import Pipeline
from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContextWindowExceeded,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
)
from pipeline.testing import FakeProvider, Reply
from tests.helpers import closed_port


@pytest.mark.parametrize(
    ("reply", "expected", "status"),
    [
        (
            Reply.error(429, "Rate limit reached", headers={"retry-after-ms": "1500"}),
            RateLimited,
            429,
        ),
        (Reply.error(400, "bad things"), BadRequest, 400),
        (
            Reply.error(
                400,
                "This model's maximum context length is 8192 tokens",
                code="context_length_exceeded",
            ),
            ContextWindowExceeded,
            400,
        ),
        (
            Reply.error(401, "Incorrect API key provided: sk-test-key-not-real"),
            AuthenticationFailed,
            401,
        ),
        (Reply.error(403, "forbidden"), AuthenticationFailed, 403),
        (Reply.error(404, "model not found"), ModelNotFound, 404),
        (Reply.error(500, "oops"), ProviderUnavailable, 500),
        (Reply.error(503, "overloaded"), ProviderUnavailable, 503),
        (Reply.error(529, "overloaded"), ProviderUnavailable, 529),
    ],
    ids=["429", "400", "context", "401", "403", "404", "500", "503", "529"],
)
async def test_status_maps_to_a_typed_error(
    no_retry: Pipeline,
    fake: FakeProvider,
    request_to,
    reply: Reply,
    expected: type[ProviderError],
    status: int,
) -> None:  # type: ignore[no-untyped-def]
    fake.script(reply)
    with pytest.raises(expected) as info:
        await no_retry.acomplete(request_to())
    assert info.value.status_code == status
    assert len(fake.requests) == 1
    assert "sk-test-key-not-real" not in str(info.value)


async def test_rate_limit_headers_are_kept_for_retry_after(
    no_retry: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(
        Reply.error(429, "slow down", headers={"retry-after-ms": "1500", "retry-after": "2"})
    )
    with pytest.raises(RateLimited) as info:
        await no_retry.acomplete(request_to())
    assert info.value.headers["retry-after-ms"] == "1500"
    assert info.value.headers["retry-after"] == "2"
    assert info.value.transient is True


async def test_connection_refused_is_unreachable_naming_host_and_port(
    no_retry: Pipeline, request_to
) -> None:  # type: ignore[no-untyped-def]
    port = closed_port()
    with pytest.raises(ProviderUnreachable) as info:
        await no_retry.acomplete(request_to(api_base=f"http://127.0.0.1:{port}/v1"))
    assert str(info.value) == f"cannot connect to 127.0.0.1:{port} (connection refused)"
    assert (info.value.host, info.value.port, info.value.reason) == (
        "127.0.0.1",
        port,
        "connection refused",
    )
    assert isinstance(info.value, ProviderUnavailable) and info.value.transient


@pytest.mark.parametrize(
    ("model", "reply", "expected", "message"),
    [
        (
            "openai/fake-model",
            Reply.error(500, "the GPU fell over"),
            ProviderUnavailable,
            "the GPU fell over",
        ),
        (
            "openai/fake-model",
            Reply.error(400, "temperature: must be <= 2"),
            BadRequest,
            "temperature: must be <= 2",
        ),
        ("openai/fake-model", Reply.error(404, "no model 'x'"), ModelNotFound, "no model 'x'"),
        ("openai/fake-model", Reply.error(403, "not for you"), AuthenticationFailed, "not for you"),
        # Anthropic's error body arrives as the repr of bytes of JSON
        (
            "anthropic/claude-x",
            Reply.error(400, "max_tokens: too large"),
            BadRequest,
            "max_tokens: too large",
        ),
        (
            "anthropic/claude-x",
            Reply.error(500, "Internal server error"),
            ProviderUnavailable,
            "Internal server error",
        ),
    ],
    ids=["openai-500", "openai-400", "openai-404", "openai-403", "anthropic-400", "anthropic-500"],
)
async def test_the_message_is_the_providers_words_once(
    no_retry: Pipeline,
    fake: FakeProvider,
    request_to,
    model: str,
    reply: Reply,
    expected: type[ProviderError],
    message: str,
) -> None:  # type: ignore[no-untyped-def]
    # litellm says "litellm.InternalServerError: InternalServerError: OpenAIException - ..."
    fake.script(reply)
    with pytest.raises(expected) as info:
        await no_retry.acomplete(request_to(model=model))
    assert str(info.value) == message


async def test_a_model_naming_no_provider_is_refused_before_sending(
    no_retry: Pipeline,
) -> None:
    from pipeline import Request

    req = Request(model="any-model", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(InvalidRequest) as info:
        await no_retry.acomplete(req)
    assert info.value.field == "model"
    assert "'any-model' names no provider" in str(info.value)
    assert "api_base" in str(info.value)


async def test_a_missing_key_is_an_authentication_failure(
    no_retry: Pipeline, fake: FakeProvider, request_to, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationFailed, match="Missing credentials"):
        await no_retry.acomplete(request_to(api_key=None))
    assert fake.requests == []
