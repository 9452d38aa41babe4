"""What went wrong with a direct call, as ``pipeline.errors``: statuses, bodies, events, sockets."""

from __future__ import annotations

import errno
import socket
from typing import Any

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContentFiltered,
    ContextWindowExceeded,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
)
from pipeline.secrets import ForeignError
from stages.dispatch.openai.errors import (
    http_error,
    provider_message,
    stream_error,
    transport_error,
)
from stages.dispatch.openai.wire import ErrorBody
from tests.helpers import make_request

KEY = "sk-test-0123456789abcdef"
REQ = make_request(api_key=KEY)
JSON = "application/json"


def body(message: str, **error: Any) -> bytes:
    import json

    return json.dumps({"error": {"message": message, **error}}).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, AuthenticationFailed),
        (403, AuthenticationFailed),
        (404, ModelNotFound),
        (408, ProviderTimeout),
        (409, ProviderUnavailable),
        (413, BadRequest),
        (422, BadRequest),
        (429, RateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (504, ProviderTimeout),
        (529, ProviderUnavailable),
        (418, ProviderError),
    ],
)
def test_each_status_has_the_class_the_litellm_backend_gives_it(status: int, cls: type) -> None:
    exc = http_error(status, {}, body("no"), JSON, REQ, "openai")
    assert type(exc) is cls
    assert (exc.status_code, exc.provider, str(exc)) == (status, "openai", "no")


def test_headers_are_kept_lower_cased_for_the_retry_stage() -> None:
    headers = {"Retry-After": "2", "retry-after-ms": "1500", "X-Request-Id": "r1"}
    exc = http_error(429, headers, body("slow down"), JSON, REQ, "openai")
    assert exc.headers == {"retry-after": "2", "retry-after-ms": "1500", "x-request-id": "r1"}
    assert exc.transient


@pytest.mark.parametrize(
    ("status", "message", "code", "cls"),
    [
        (
            400,
            "This model's maximum context length is 8192 tokens",
            "context_length_exceeded",
            ContextWindowExceeded,
        ),
        (400, "prompt is too long: 250000 tokens > 200000 maximum", None, ContextWindowExceeded),
        (400, "rejected", "content_policy_violation", ContentFiltered),
        (400, "Output blocked by content filtering policy", "content_filter", ContentFiltered),
    ],
)
def test_a_bad_request_about_the_context_or_the_content_policy(
    status: int, message: str, code: str | None, cls: type
) -> None:
    exc = http_error(status, {}, body(message, code=code), JSON, REQ, "openai")
    assert type(exc) is cls


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b'{"error": {"message": "  the words  "}}', "the words"),
        (b'{"message": "top-level"}', "top-level"),
        (b'{"detail": "FastAPI says"}', "FastAPI says"),
        (b'{"error": "just a string"}', "just a string"),
        (b'[{"error": {"message": "Google-style", "code": 429}}]', "Google-style"),
        (b'{"error": {"type": "x"}}', None),
        (b"<html>not json</html>", None),
        (b"", None),
    ],
)
def test_the_providers_words_from_its_error_body(raw: bytes, words: str | None) -> None:
    assert provider_message(raw) == words


def test_a_page_is_named_by_its_type_and_first_bytes() -> None:
    page = b"<!DOCTYPE html><html><title>502 Bad Gateway</title>\n\n  nginx</html>"
    exc = http_error(502, {}, page, "text/html", REQ, "openai")
    assert str(exc) == (
        "Error code: 502 (HTTP 502, text/html:"
        " '<!DOCTYPE html><html><title>502 Bad Gateway</title> nginx</html>')"
    )
    assert str(http_error(500, {}, b"", None, REQ, "openai")) == "Error code: 500"


def test_the_key_never_appears_in_a_message() -> None:
    exc = http_error(401, {}, body(f"Incorrect API key provided: {KEY}"), JSON, REQ, "openai")
    assert KEY not in str(exc) and "Incorrect API key provided" in str(exc)
    exc = http_error(500, {}, f"<p>Bearer {KEY}</p>".encode(), "text/html", REQ, "openai")
    assert KEY not in str(exc)


@pytest.mark.parametrize(
    ("error", "cls", "status"),
    [
        (
            ErrorBody(
                message="tool call validation failed", type="invalid_request_error", code=400
            ),
            BadRequest,
            400,
        ),
        (ErrorBody(message="slow", code="429"), RateLimited, 429),
        (ErrorBody(message="slow", type="rate_limit_exceeded"), RateLimited, None),
        (
            ErrorBody(message="The server is overloaded", type="server_error"),
            ProviderUnavailable,
            None,
        ),
        (ErrorBody(message="bad key", type="authentication_error"), AuthenticationFailed, None),
        (ErrorBody(message="upstream died"), ProviderUnavailable, None),
        ("a plain string", ProviderUnavailable, None),
    ],
)
def test_an_error_event_by_its_code_else_its_type(
    error: Any, cls: type, status: int | None
) -> None:
    exc = stream_error(error, REQ, "groq")
    assert (type(exc), exc.status_code, exc.provider) == (cls, status, "groq")


def test_an_error_event_without_words_still_says_something() -> None:
    assert str(stream_error(ErrorBody(type="overloaded_error"), REQ, "x")) == "overloaded_error"
    assert str(stream_error(ErrorBody(), REQ, "x")) == "the provider sent an error event"


def key(host: str = "127.0.0.1", port: int = 8000) -> ConnectionKey:
    return ConnectionKey(host, port, False, True, None, None, None)


def translated(exc: BaseException, *, reading: bool = False) -> Any:
    error = transport_error(exc, REQ, "http://127.0.0.1:8000/v1/chat/completions", reading=reading)
    assert isinstance(error.__cause__, ForeignError)  # chained only as a redacted stand-in
    return error


def test_a_refused_connection_is_unreachable_naming_host_and_port() -> None:
    os_error = ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")
    exc = translated(aiohttp.ClientConnectorError(key(port=9), os_error))
    assert type(exc) is ProviderUnreachable
    assert (str(exc), exc.host, exc.port, exc.reason) == (
        "cannot connect to 127.0.0.1:9 (connection refused)",
        "127.0.0.1",
        9,
        "connection refused",
    )
    assert exc.transient


def test_a_host_that_does_not_exist() -> None:
    os_error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    exc = translated(aiohttp.ClientConnectorDNSError(key("no-such-host.invalid", 443), os_error))
    assert (type(exc), exc.host, exc.reason) == (
        ProviderUnreachable,
        "no-such-host.invalid",
        "host not found",
    )


@pytest.mark.parametrize(
    ("exc", "cls", "words"),
    [
        (aiohttp.ServerDisconnectedError(), ProviderUnavailable, "closed the connection"),
        (aiohttp.ClientOSError(errno.ECONNRESET, "reset by peer"), ProviderUnavailable, "failed"),
        (aiohttp.ConnectionTimeoutError("timed out"), ProviderTimeout, "connect"),
        (TimeoutError(), ProviderTimeout, "timed out"),
        (
            aiohttp.ClientPayloadError(
                "Response payload is not completed: TransferEncodingError(400, 'Not enough data')"
            ),
            ProviderUnavailable,
            "cut short",
        ),
        (
            aiohttp.ClientPayloadError("Can not decode content-encoding: gzip"),
            MalformedResponse,
            "content encoding",
        ),
        (
            aiohttp.ClientPayloadError("400, message: Invalid chunk size"),
            MalformedResponse,
            "framing",
        ),
        (aiohttp.InvalidURL("http:///v1"), InvalidRequest, "api_base"),
        (
            ValueError(
                "Newline or carriage return character detected in HTTP status message or header"
            ),
            InvalidRequest,
            "could not be built",
        ),
    ],
)
def test_what_aiohttp_raises(exc: BaseException, cls: type, words: str) -> None:
    error = translated(exc, reading=True)
    assert type(error) is cls
    assert words in str(error)
    if isinstance(error, MalformedResponse):
        assert not error.transient
