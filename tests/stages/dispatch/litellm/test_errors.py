"""litellm's exceptions as ``pipeline.errors``, without litellm.

``translate`` classifies by the exception's class names along its MRO and by
the HTTP status, so exceptions shaped like litellm's (name, ``status_code``,
``llm_provider``, ``response``) exercise it offline; one test checks the same
against litellm's own classes (``e2e``: it imports litellm).
"""

from __future__ import annotations

import errno
import socket
from types import SimpleNamespace as NS
from typing import Any

import pytest

from pipeline import Pipeline, testing
from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ClientClosed,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
)
from pipeline.secrets import ForeignError
from pipeline.testing import FakeClock, text_chunks
from stages.dispatch.litellm import import_litellm
from stages.dispatch.litellm.errors import clean_message, response_headers, translate
from tests.helpers import make_request


@pytest.mark.e2e
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


def shaped(name: str, message: str = "boom", **attrs: Any) -> Exception:
    """An exception of a class called ``name`` (litellm's classes are matched by name)."""
    exc: Exception = type(name, (Exception,), {})(message)
    exc.message = message  # type: ignore[attr-defined]
    for key, value in attrs.items():
        setattr(exc, key, value)
    return exc


@pytest.mark.parametrize(
    ("name", "status", "expected"),
    [
        ("RateLimitError", 429, RateLimited),
        ("AuthenticationError", 401, AuthenticationFailed),
        ("PermissionDeniedError", 403, AuthenticationFailed),
        ("NotFoundError", 404, ModelNotFound),
        ("Timeout", 408, ProviderTimeout),
        ("ContextWindowExceededError", 400, ContextWindowExceeded),
        ("ContentPolicyViolationError", 400, ContentFiltered),
        ("InternalServerError", 500, ProviderUnavailable),
        ("ServiceUnavailableError", 503, ProviderUnavailable),
        ("BadRequestError", 400, BadRequest),
        ("UnprocessableEntityError", 422, BadRequest),
        # no class litellm names: the status decides
        ("APIError", 429, RateLimited),
        ("APIError", 403, AuthenticationFailed),
        ("APIError", 504, ProviderTimeout),
        ("APIError", 529, ProviderUnavailable),
        ("APIError", 409, ProviderUnavailable),
        ("APIError", 413, BadRequest),
        ("APIError", 418, ProviderError),
        ("APIError", None, ProviderError),
    ],
)
def test_the_class_name_decides_first_then_the_status(
    name: str, status: int | None, expected: type[ProviderError]
) -> None:
    err = translate(shaped(name, status_code=status, llm_provider="openai"), make_request())
    assert type(err) is expected
    assert isinstance(err, ProviderError) and err.status_code == status
    assert err.provider == "openai"


def test_a_subclass_of_a_litellm_class_is_classified_as_its_base() -> None:
    base = type("RateLimitError", (Exception,), {})
    sub = type("VendorRateLimit", (base,), {})("slow down")
    assert type(translate(sub, make_request())) is RateLimited


def test_the_status_can_come_from_the_response() -> None:
    err = translate(shaped("APIError", response=NS(status_code=401, headers={})), make_request())
    assert type(err) is AuthenticationFailed and err.status_code == 401


def test_python_timeouts_and_connection_errors_have_classes_of_their_own() -> None:
    assert type(translate(TimeoutError("slow"), make_request())) is ProviderTimeout
    assert type(translate(ConnectionResetError("reset"), make_request())) is ProviderUnavailable


@pytest.mark.parametrize(
    "words",
    ["This model's maximum context length is 8192 tokens", "prompt is too long: 210000 tokens"],
)
def test_a_bad_request_about_the_context_is_context_window_exceeded(words: str) -> None:
    err = translate(shaped("BadRequestError", words, status_code=400), make_request())
    assert type(err) is ContextWindowExceeded


def test_missing_credentials_reported_as_a_500_are_an_authentication_failure() -> None:
    exc = shaped("InternalServerError", "Missing credentials. Please pass an api_key")
    assert type(translate(exc, make_request())) is AuthenticationFailed


def test_a_model_naming_no_provider_is_the_callers_error_naming_the_field() -> None:
    exc = shaped("BadRequestError", "LLM Provider NOT provided. Pass in the LLM provider")
    err = translate(exc, make_request(model="gpt-nothing"))
    assert isinstance(err, InvalidRequest) and err.field == "model"
    assert "'gpt-nothing'" in str(err)


def test_a_refused_connection_is_unreachable_naming_host_and_port() -> None:
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    outer = shaped("APIConnectionError", "Connection error.")
    outer.__cause__ = refused
    err = translate(outer, make_request(api_base="http://127.0.0.1:9/v1"))
    assert isinstance(err, ProviderUnreachable)
    assert (err.host, err.port, err.reason) == ("127.0.0.1", 9, "connection refused")
    assert "cannot connect to 127.0.0.1:9 (connection refused)" in str(err)


def test_the_innermost_exception_that_knows_the_host_names_it() -> None:
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    aiohttp_like = shaped("ClientConnectorError", "cannot connect", host="llm.example", port=8443)
    aiohttp_like.__cause__ = lookup
    outer = shaped("APIConnectionError", "Connection error.")
    outer.__cause__ = aiohttp_like
    err = translate(outer, make_request())
    assert isinstance(err, ProviderUnreachable)
    assert (err.host, err.port, err.reason) == ("llm.example", 8443, "host not found")


def test_the_api_key_never_reaches_the_message_and_the_cause_is_a_stand_in() -> None:
    key = "sk-test-0123456789abcdefABCDEF"
    exc = shaped("AuthenticationError", f"Incorrect API key provided: {key}", status_code=401)
    err = translate(exc, make_request(api_key=key))
    assert key not in str(err) and key not in repr(err)
    assert isinstance(err.__cause__, ForeignError) and err.__cause__ is not exc
    assert key not in str(err.__cause__)


def test_retry_after_and_the_other_response_headers_are_kept_lower_cased() -> None:
    exc = shaped("RateLimitError", "slow down", status_code=429)
    exc.litellm_response_headers = {"Retry-After": "7", "X-Request-Id": "r1"}  # type: ignore[attr-defined]
    err = translate(exc, make_request())
    assert isinstance(err, RateLimited)
    assert err.headers == {"retry-after": "7", "x-request-id": "r1"}
    assert response_headers(shaped("X", response=NS(headers={"A": "b"}))) == {"a": "b"}
    assert response_headers(ValueError("no headers")) == {}


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("litellm.InternalServerError: InternalServerError: OpenAIException - boom", "boom"),
        ("litellm.RateLimitError: slow down. Handle with `litellm.RateLimitError`.", "slow down"),
        ('Error code: 400 - {"error": {"message": "bad field", "type": "x"}}', "bad field"),
        ("{'error': {'message': 'from a dict repr'}}", "from a dict repr"),
        ('b\'{"error": {"message": "from bytes"}}\'', "from bytes"),
        ('{"error": "just a string"}', "just a string"),
        ("plain words", "plain words"),
        ("   ", ""),
    ],
)
def test_clean_message_leaves_the_providers_own_words(raw: str, words: str) -> None:
    assert clean_message(raw) == words


def test_a_pipeline_error_is_already_ours_and_passes_as_it_is() -> None:
    ours = RateLimited("slow down", status_code=429)
    assert translate(ours, make_request()) is ours
