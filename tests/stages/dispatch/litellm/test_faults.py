"""Telling "the request could not be built" and "the answer could not be read" from
a provider failure, on the real exception classes of the libraries under litellm."""

from __future__ import annotations

import json

import httpx
import pytest
from aiohttp import http_exceptions

from pipeline.errors import InvalidRequest, MalformedResponse
from stages.dispatch.litellm.faults import body_note, request_fault, response_fault


def wrapped(inner: BaseException) -> Exception:
    """``inner`` as litellm hands it over: inside two layers of its own."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise ConnectionError("Connection error.") from exc
    except ConnectionError as outer:
        err = RuntimeError("litellm.InternalServerError: OpenAIException - Connection error.")
        err.__context__ = outer
        return err


@pytest.mark.parametrize(
    ("inner", "field"),
    [
        (TypeError("Object of type set is not JSON serializable"), "request body"),
        (ValueError("Out of range float values are not JSON compliant"), "request body"),
        (
            RecursionError("maximum recursion depth exceeded while encoding a JSON object"),
            "request body",
        ),
        (ValueError("Forbidden control character detected in headers."), "header"),
        (UnicodeEncodeError("ascii", "sk-é", 3, 4, "ordinal not in range(128)"), "header"),
        (UnicodeEncodeError("utf-8", "a\ud800", 1, 2, "surrogates not allowed"), "text field"),
        (ValueError("Port out of range 0-65535"), "api_base"),
        (httpx.InvalidURL("/v1/chat/completions"), "api_base"),
    ],
)
def test_requests_that_cannot_be_built(inner: BaseException, field: str) -> None:
    fault = request_fault(wrapped(inner))
    assert isinstance(fault, InvalidRequest)
    assert field in fault.field
    assert response_fault(wrapped(ValueError("Connection reset"))) is None


@pytest.mark.parametrize(
    "inner",
    [
        json.JSONDecodeError("Expecting value", "{x", 1),
        UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"),
        http_exceptions.BadHttpMessage("Invalid character in chunk size"),
        httpx.DecodingError("Error -3 while decompressing data"),
        RecursionError("maximum recursion depth exceeded while decoding a JSON array"),
    ],
)
def test_answers_that_cannot_be_read(inner: BaseException) -> None:
    fault = response_fault(wrapped(inner))
    assert isinstance(fault, MalformedResponse) and fault.transient is False
    assert request_fault(wrapped(inner)) is None


def test_a_body_cut_short_is_not_malformed() -> None:
    """A dropped connection mid-chunk is transient (aiohttp says it as a framing error)."""
    cut = http_exceptions.TransferEncodingError(
        "Not enough data to satisfy transfer length header."
    )
    assert response_fault(wrapped(cut)) is None


def test_python_errors_mean_a_bad_shape_only_while_reading() -> None:
    error = wrapped(AttributeError("'str' object has no attribute 'finish_reason'"))
    assert response_fault(error) is None
    assert isinstance(response_fault(error, reading=True), MalformedResponse)


def test_an_html_error_page_is_named_and_redacted() -> None:
    page = b"<html><body><h1>502 Bad Gateway</h1> token sk-proj-ABCDEFGHIJKLMNOP</body></html>"
    response = httpx.Response(502, headers={"content-type": "text/html"}, content=page)
    error = RuntimeError("Error code: 502")
    error.response = response  # type: ignore[attr-defined]
    note = body_note(error, "Error code: 502")
    assert "HTTP 502, text/html" in note and "502 Bad Gateway" in note
    assert "ABCDEFGHIJKLMNOP" not in note


def test_a_json_error_already_quoted_adds_nothing() -> None:
    body = {"error": {"message": "model not found", "type": "invalid_request_error"}}
    response = httpx.Response(404, json=body)
    error = RuntimeError("NotFoundError: model not found")
    error.response = response  # type: ignore[attr-defined]
    assert body_note(error, str(error)) == ""
