"""The reference's helpers through the adapter: retry delay, argument repair, tool format."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from pipeline.compat import (
    LiteLLMProvider,
    Tool,
    compute_retry_delay,
    parse_tool_call_arguments,
    tool_to_openai_format,
)
from pipeline.errors import RateLimited
from pipeline.request import ToolSpec
from tests.pipeline.test_policy import REFERENCE_HEADER_CASES


class _Response:
    def __init__(self, headers: Any) -> None:
        self.headers = headers


def with_headers(headers: dict[str, str] | None) -> Exception:
    """An HTTP library's exception: ``.response.headers`` is a plain dict."""
    exc = Exception("rate limited")
    exc.response = _Response(headers)  # type: ignore[attr-defined]
    return exc


# --- retry delay (the reference's table) ---------------------------------------------------


@pytest.mark.parametrize(("attempt", "expected"), [(0, 2), (1, 4), (2, 8), (3, 16), (10, 120)])
def test_backoff_without_an_exception(attempt: int, expected: float) -> None:
    assert compute_retry_delay(attempt) == expected


def test_custom_max_delay() -> None:
    assert compute_retry_delay(5, max_delay=10) == 10


@pytest.mark.parametrize(("headers", "expected"), REFERENCE_HEADER_CASES)
def test_server_headers(headers: dict[str, str], expected: float) -> None:
    assert compute_retry_delay(0, exception=with_headers(headers)) == expected


def test_a_response_without_headers() -> None:
    assert compute_retry_delay(1, exception=with_headers(None)) == 4


def test_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3.0 <= compute_retry_delay(0, exception=with_headers({"retry-after": when})) <= 6.0


def test_exceptions_without_a_response() -> None:
    no_response = Exception("test")
    no_response.response = None  # type: ignore[attr-defined]
    assert compute_retry_delay(0, exception=no_response) == 2
    assert compute_retry_delay(0, exception=ValueError("no response attr")) == 2


def test_a_pipeline_rate_limit_carries_its_headers() -> None:
    exc = RateLimited("429", status_code=429, headers={"Retry-After": "4"})
    assert compute_retry_delay(3, exception=exc) == 4.0


# --- tool-call arguments -------------------------------------------------------------------


def test_truncated_arguments_are_repaired() -> None:
    raw = (
        '{"question":"What story structure should the agent use?",'
        '"options":["3-act structure","Beginning-Middle-End","Random paragraph"'
    )
    assert parse_tool_call_arguments(raw, "ask_user") == {
        "question": "What story structure should the agent use?",
        "options": ["3-act structure", "Beginning-Middle-End", "Random paragraph"],
    }


def test_unrepairable_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="Failed to parse tool call arguments"):
        parse_tool_call_arguments('{"question": foo', "ask_user")


def test_empty_arguments_are_an_empty_object() -> None:
    assert parse_tool_call_arguments("", "noop") == {}


def test_the_provider_methods_of_the_reference() -> None:
    p = LiteLLMProvider()
    assert p._parse_tool_call_arguments('{"a": 1', "t") == {"a": 1}
    with pytest.raises(ValueError, match="Failed to parse tool call arguments"):
        p._parse_tool_call_arguments("[1, 2]", "t")


# --- tool format ---------------------------------------------------------------------------

SEARCH = Tool(
    "search",
    "Search the web",
    {
        "properties": {"query": {"type": "string", "description": "Search query"}},
        "required": ["query"],
    },
)


def test_tool_to_openai_format() -> None:
    assert tool_to_openai_format(SEARCH) == {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the web",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Search query"}},
                "required": ["query"],
            },
        },
    }
    assert LiteLLMProvider()._tool_to_openai_format(SEARCH) == tool_to_openai_format(SEARCH)


def test_tool_format_fills_in_an_empty_schema_and_keeps_extra_keys() -> None:
    assert tool_to_openai_format(Tool("noop", "does nothing"))["function"]["parameters"] == {
        "type": "object",
        "properties": {},
        "required": [],
    }
    strict = ToolSpec(name="s", parameters={"properties": {}, "additionalProperties": False})
    assert tool_to_openai_format(strict)["function"]["parameters"]["additionalProperties"] is False
