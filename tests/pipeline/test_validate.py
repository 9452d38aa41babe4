"""The JSON rules and their limits: exact boundaries, and no RecursionError ever."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import pytest

from pipeline import Message, Request
from pipeline.errors import InvalidRequest
from pipeline.validate import MAX_DEPTH, MAX_VALUES, check_json, check_text

USER = {"role": "user", "content": "hi"}


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out  # ``depth`` lists, one inside the other


def test_nesting_up_to_the_limit_is_accepted_and_one_more_refused() -> None:
    check_json("x", nested(MAX_DEPTH))
    with pytest.raises(InvalidRequest, match=f"more than {MAX_DEPTH} levels"):
        check_json("x", nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("depth", [sys.getrecursionlimit() * 2, 100_000])
def test_absurd_nesting_is_refused_without_recursion(depth: int) -> None:
    with pytest.raises(InvalidRequest) as info:
        Request(model="m", messages=[USER], extra={"extra_body": {"a": nested(depth)}})
    assert info.value.field.startswith("extra.extra_body.a[0][0]")


def test_a_self_containing_value_is_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidRequest, match="nested more than"):
        check_json("extra.x", loop)


def test_a_typed_message_nested_too_deep_is_refused() -> None:
    deep = Message(role="user", content=[{"type": "text", "text": "x", "meta": nested(5000)}])
    with pytest.raises(InvalidRequest) as info:
        Request(model="m", messages=[deep])
    assert info.value.field == "messages[0]"


def test_too_many_values_are_refused() -> None:
    with pytest.raises(InvalidRequest, match="more than"):
        check_json("extra.x", [0] * MAX_VALUES)


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({"a": [1, {"b": float("nan")}]}, "x.a[1].b"),
        ({"a": [float("-inf")]}, "x.a[0]"),
        ({"a": 2**63}, "x.a"),
        ({"a": -(2**63) - 1}, "x.a"),
        ({"a": {1: "x"}}, "x.a"),
        ({"a\udc00": 1}, "x"),
        ({"a": b"bytes"}, "x.a"),
        ({"a": {1, 2}}, "x.a"),
    ],
)
def test_each_problem_names_its_path(value: Any, where: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        check_json("x", value)
    assert info.value.field == where


def test_json_edge_values_are_accepted() -> None:
    check_json("x", {"a": [True, False, None, 2**63 - 1, -(2**63), 0.0, "é😀", ()]})


def test_text_that_is_not_utf8_names_the_position() -> None:
    with pytest.raises(InvalidRequest, match="lone surrogate '\\\\ud800' at index 3"):
        check_text("system", "abc\ud800")
    check_text("system", "😀 astral is fine")  # a pair is one code point


def test_every_role_takes_its_own_parts() -> None:
    Request(
        model="m",
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": "rules"}]},
            {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "https://v"}}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hm", "signature": "s"},
                    {"type": "redacted_thinking", "data": "xyz"},
                    {"type": "text", "text": "answer"},
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "42"}]},
        ],
    )


def test_the_constructor_never_raises_anything_but_invalid_request() -> None:
    """Odd values in every field: always InvalidRequest (a ValueError), never a crash."""
    odd: list[Any] = [
        None,
        0,
        -1,
        1.5,
        float("nan"),
        "",
        "\x00",
        "\ud800",
        [],
        {},
        [[]],
        {1: 2},
        set(),
        object(),
        b"x",
        nested(3000),
    ]
    fields = [
        "model",
        "messages",
        "system",
        "tools",
        "max_tokens",
        "response_format",
        "json_mode",
        "api_key",
        "api_base",
        "extra",
    ]
    for field in fields:
        for value in odd:
            with contextlib.suppress(InvalidRequest):
                Request(**{"model": "m", "messages": [USER], field: value})
