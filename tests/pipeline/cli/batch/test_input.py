"""The batch input: lines checked one by one, before anything is sent."""

from __future__ import annotations

import json

import pytest

from pipeline.cli.batch.input import Defaults, parse_input

DEFAULTS = Defaults(model="openai/m", max_tokens=100)


def lines(*objs: object) -> bytes:
    return b"\n".join(o if isinstance(o, bytes) else json.dumps(o).encode() for o in objs) + b"\n"


def test_a_line_becomes_a_request_with_the_defaults_and_its_own_overrides() -> None:
    parsed = parse_input(
        lines(
            {"id": "a", "prompt": "hi"},
            {
                "id": 7,
                "messages": [{"role": "user", "content": "yo"}],
                "model": "anthropic/x",
                "system": "Be brief.",
                "max_tokens": 5,
                "json": True,
                "api_base": "http://127.0.0.1:9/v1",
                "temperature": 0.2,
                "extra": {"top_p": 0.9},
            },
        ),
        Defaults(model="openai/m", system="default system", max_tokens=100),
    )
    assert parsed.problems == []
    a, b = parsed.items
    assert (a.line, a.id, a.request.model, a.request.system, a.request.max_tokens) == (
        1,
        "a",
        "openai/m",
        "default system",
        100,
    )
    assert a.request.messages == [{"role": "user", "content": "hi"}]
    assert (b.line, b.id, b.request.model, b.request.system) == (2, 7, "anthropic/x", "Be brief.")
    assert (b.request.max_tokens, b.request.json_mode, b.request.api_base) == (
        5,
        True,
        "http://127.0.0.1:9/v1",
    )
    assert b.request.extra == {"top_p": 0.9, "temperature": 0.2}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json", "line 1: not JSON"),
        (b"[1, 2]", "line 1: not a JSON object"),
        (b'{"prompt": "hi"}', "line 1: no id"),
        (b'{"id": "", "prompt": "hi"}', "line 1: the id is empty"),
        (b'{"id": true, "prompt": "hi"}', "line 1: id: expected int | str, got bool"),
        (b'{"id": "a"}', "line 1: id 'a': give either a prompt or messages"),
        (
            b'{"id": "a", "prompt": "x", "messages": []}',
            "line 1: id 'a': give either a prompt or messages",
        ),
        (b'{"id": "a", "prompt": "x", "max_tokens": "9"}', "line 1: max_tokens: expected int"),
        (
            b'{"id": "a", "prompt": "x", "max_tokens": 0}',
            "line 1: id 'a': invalid request: max_tokens: must be a positive integer",
        ),
        (
            b'{"id": "a", "messages": [{"role": "robot", "content": "x"}]}',
            "line 1: id 'a': invalid request: messages[0].role: unknown role 'robot'",
        ),
        (b'{"id": "a", "prompt": "x", "modle": "y"}', "line 1: unknown field 'modle'"),
        (
            b'{"id": "a", "prompt": ""}',
            "line 1: id 'a': invalid request: prompt: is empty",
        ),  # as `run` says
        (b'{"id": "a", "prompt": " \\n "}', "line 1: id 'a': invalid request: prompt: is empty"),
        (
            b'{"id": "a", "prompt": "x", "api_base": "ftp://x"}',
            "line 1: id 'a': invalid request: api_base",
        ),
        (
            b'{"id": "a", "prompt": "x", "extra": {"stream": false}}',
            "line 1: id 'a': invalid request: extra.stream",
        ),
    ],
)
def test_a_bad_line_is_a_problem_naming_its_line_never_an_exception(
    line: bytes, problem: str
) -> None:
    parsed = parse_input(line + b"\n", DEFAULTS)
    assert parsed.items == []
    assert len(parsed.problems) == 1
    assert str(parsed.problems[0]).startswith(problem)


def test_no_model_anywhere_is_a_problem_per_line() -> None:
    parsed = parse_input(lines({"id": "a", "prompt": "x"}), Defaults())
    assert str(parsed.problems[0]) == (
        "line 1: id 'a': no model: give --model, or a model field on the line"
    )


def test_duplicates_name_the_first_line_and_blank_lines_are_skipped() -> None:
    data = lines(
        {"id": "a", "prompt": "1"},
        b"",
        b"  ",
        {"id": "a", "prompt": "2"},
        {"id": "b", "prompt": "3"},
    )
    parsed = parse_input(data, DEFAULTS)
    assert [(i.line, i.id) for i in parsed.items] == [(1, "a"), (5, "b")]
    assert [str(p) for p in parsed.problems] == ["line 4: duplicate id 'a' (first on line 1)"]


def test_ids_7_and_seven_as_a_string_are_different_ids() -> None:
    parsed = parse_input(lines({"id": 7, "prompt": "x"}, {"id": "7", "prompt": "y"}), DEFAULTS)
    assert len(parsed.items) == 2 and parsed.problems == []
