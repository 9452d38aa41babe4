"""A normalized request as the HTTP request an OpenAI-compatible endpoint takes (pure)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest

from pipeline.errors import AuthenticationFailed, InvalidRequest
from pipeline.profiles import DEFAULT, resolve
from pipeline.request import Request
from stages.dispatch.openai.outgoing import outgoing

HI = [{"role": "user", "content": "hi"}]


def request(**fields: Any) -> Request:
    return Request(
        **{"model": "any-model", "messages": HI, "api_base": "http://127.0.0.1:8000/v1", **fields}
    )


def sent(req: Request, **options: Any) -> tuple[str, dict[str, str], dict[str, Any]]:
    out = outgoing(req, resolve(req.model, req.api_base), **options)
    return out.url, dict(out.headers), json.loads(out.body)


@pytest.fixture(autouse=True)
def _no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "GROQ_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE"):
        monkeypatch.delenv(name, raising=False)


def test_a_local_server_gets_the_model_as_given_and_no_key() -> None:
    url, headers, body = sent(request(max_tokens=100))
    assert url == "http://127.0.0.1:8000/v1/chat/completions"
    assert "Authorization" not in headers
    assert body == {
        "model": "any-model",
        "messages": HI,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 100,
    }


def test_the_key_goes_only_into_the_authorization_header() -> None:
    out = outgoing(request(api_key="sk-test-0123456789"), DEFAULT)
    assert out.headers["Authorization"] == "Bearer sk-test-0123456789"
    assert b"sk-test" not in out.body
    assert "sk-test" not in repr(out)


def test_the_providers_prefix_is_removed_and_its_endpoint_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GROQ_API_KEY", "gsk_from_the_environment")
    url, headers, body = sent(Request(model="groq/llama-3.1-8b-instant", messages=HI))
    assert url == "https://api.groq.com/openai/v1/chat/completions"
    assert headers["Authorization"] == "Bearer gsk_from_the_environment"
    assert body["model"] == "llama-3.1-8b-instant"


def test_openais_own_endpoint_takes_max_completion_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    url, _, body = sent(Request(model="openai/gpt-5-mini", messages=HI, max_tokens=50))
    assert url == "https://api.openai.com/v1/chat/completions"
    assert (body["model"], body["max_completion_tokens"], "max_tokens" in body) == (
        "gpt-5-mini",
        50,
        False,
    )
    # an explicit base is some other server speaking the same API: max_tokens, as litellm sends
    _, _, body = sent(request(model="openai/gpt-5-mini", api_key="k", max_tokens=50))
    assert (body["model"], body["max_tokens"]) == ("gpt-5-mini", 50)


def test_openai_base_url_in_the_environment_wins_over_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.internal:4000/v1/")
    url, _, _ = sent(Request(model="openai/gpt-4o", messages=HI, api_key="k"))
    assert url == "http://proxy.internal:4000/v1/chat/completions"


def test_a_provider_that_needs_a_key_gets_none_sent_without_one() -> None:
    with pytest.raises(AuthenticationFailed, match=r"Missing credentials.*OPENAI_API_KEY"):
        outgoing(Request(model="openai/gpt-4o", messages=HI), resolve("openai/gpt-4o"))


def test_extra_goes_to_the_body_headers_to_headers_litellms_options_nowhere() -> None:
    req = request(
        extra={
            "temperature": 0.2,
            "seed": 3,
            "extra_headers": {"X-Trace": "t1"},
            "extra_body": {"top_k": 5},
            "metadata": {"litellm": "logging"},
            "timeout": 30,
        }
    )
    _, headers, body = sent(req)
    assert headers["X-Trace"] == "t1"
    assert (body["temperature"], body["seed"], body["top_k"]) == (0.2, 3, 5)
    assert not {"metadata", "timeout", "extra_body", "extra_headers"} & set(body)


def test_tools_response_format_and_no_stream() -> None:
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {}}}]
    req = request(tools=tools, response_format={"type": "json_object"})
    _, headers, body = sent(req, stream=False)
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    assert body["response_format"] == {"type": "json_object"}
    assert "stream" not in body and "stream_options" not in body
    assert headers["Accept"] == "application/json"


def test_a_profile_that_names_no_endpoint_needs_an_api_base() -> None:
    with pytest.raises(InvalidRequest) as info:
        outgoing(Request(model="gpt-4o-mini", messages=HI), DEFAULT)
    assert info.value.field == "api_base"


def forced(req: Request, field: str, value: Any) -> Request:
    req = msgspec.structs.replace(req)
    msgspec.structs.force_setattr(req, field, value)
    return req


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("api_key", "sk-a\r\nX-Injected: 1", "api_key"),
        ("api_key", "sk-clé", "api_key"),
        ("extra", {"temperature": float("nan")}, "extra.temperature"),
        ("extra", {"extra_body": {"a": {1, 2}}}, "extra.extra_body.a"),
        ("messages", [{"role": "user", "content": "a\ud800b"}], "the request body"),
        ("api_base", "http:///v1", "api_base"),
        ("api_base", "http://127.0.0.1:99999/v1", "api_base"),
    ],
)
def test_a_value_forced_past_validation_is_refused_before_sending(
    field: str, value: Any, named: str
) -> None:
    """msgspec would send NaN as null and a set as a list: they are refused instead."""
    with pytest.raises(InvalidRequest) as info:
        outgoing(forced(request(), field, value), DEFAULT)
    assert info.value.field == named
    assert "could not be built" in str(info.value)
    assert "sk-a" not in str(info.value)
