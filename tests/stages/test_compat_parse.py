"""Tool calls read out of plain text (the reference's OpenRouter answers and more)."""

import logging

import pytest

from pipeline.request import ToolSpec
from stages.compat_parse import extract_json_object, parse_compat_answer

WEB_SEARCH = ToolSpec(
    name="web_search",
    parameters={
        "properties": {"query": {"type": "string"}, "num_results": {"type": "integer"}},
        "required": ["query"],
    },
)
ASK_MULTI = ToolSpec(
    name="ask_user_multiple",
    parameters={
        "properties": {
            "options": {"type": "array"},
            "question": {"type": "string"},
            "prompt": {"type": "string"},
        }
    },
)
ASK = ToolSpec(
    name="ask_user",
    parameters={"properties": {"question": {"type": "string"}, "options": {"type": "array"}}},
)


def test_json_protocol() -> None:
    text = '{"assistant_response":"","tool_calls":[{"name":"web_search","arguments":{"query":"Python 3.13 release notes","num_results":3}}]}'
    assert parse_compat_answer(text, [WEB_SEARCH]) == (
        "",
        [("web_search", {"query": "Python 3.13 release notes", "num_results": 3})],
    )


def test_marker_wrapped_calls_with_keyword_arguments() -> None:
    text = "<|tool_call_start|>[ask_user_multiple(options=['Quartet Collaborator', 'Project Advisor'], question='Who are you?', prompt='Who are you?')]<|tool_call_end|>"
    assert parse_compat_answer(text, [ASK_MULTI]) == (
        "",
        [
            (
                "ask_user_multiple",
                {
                    "options": ["Quartet Collaborator", "Project Advisor"],
                    "question": "Who are you?",
                    "prompt": "Who are you?",
                },
            )
        ],
    )


def test_plain_call_lines_map_positional_arguments_by_schema_order() -> None:
    text = (
        "Queen has been loaded. It's ready to assist with your planning needs.\n\n"
        "ask_user('What would you like to do?', ['Define a new agent', 'Diagnose an existing agent', 'Explore tools'])"
    )
    assert parse_compat_answer(text, [ASK]) == (
        "Queen has been loaded. It's ready to assist with your planning needs.",
        [
            (
                "ask_user",
                {
                    "question": "What would you like to do?",
                    "options": [
                        "Define a new agent",
                        "Diagnose an existing agent",
                        "Explore tools",
                    ],
                },
            )
        ],
    )


def test_non_json_plain_text_stays_text() -> None:
    assert parse_compat_answer("I can answer directly without tools.", [WEB_SEARCH]) == (
        "I can answer directly without tools.",
        [],
    )


@pytest.mark.parametrize(
    "text",
    [
        '{"content": "hi", "tool_call": {"name": "web_search", "arguments": "{\\"query\\": \\"x\\"}"}}',
        '{"name": "web_search", "arguments": {"query": "x"}}',
        'Sure:\n```json\n{"response": "hi", "tool_calls": [{"function": {"name": "web_search", "arguments": "{\\"query\\": \\"x\\"}"}}]}\n```',
        'Calling now {"tool_calls": [{"tool_name": "web_search", "tool_input": {"query": "x"}}]} ok',
    ],
    ids=["tool_call-and-string-args", "bare-call", "fenced-function-block", "embedded"],
)
def test_json_variants(text: str) -> None:
    _, calls = parse_compat_answer(text, [WEB_SEARCH])
    assert calls == [("web_search", {"query": "x"})]


def test_unknown_tools_are_dropped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    text = '{"assistant_response": "ok", "tool_calls": [{"name": "rm_rf", "arguments": {}}, {"name": "web_search", "arguments": {"query": "q"}}]}'
    with caplog.at_level(logging.WARNING, logger="llmpipe.tool_compat"):
        assert parse_compat_answer(text, [WEB_SEARCH]) == ("ok", [("web_search", {"query": "q"})])
    assert "rm_rf" in caplog.text


def test_a_line_calling_some_other_function_stays_text() -> None:
    text = "Try this:\nprint('hello')"
    assert parse_compat_answer(text, [ASK]) == (text, [])


def test_arguments_are_parsed_never_evaluated() -> None:
    text = "ask_user(__import__('os').system('echo pwned'), [])"
    assert parse_compat_answer(text, [ASK]) == (text, [])


def test_json_that_is_not_the_protocol_is_an_answer() -> None:
    assert parse_compat_answer('{"city": "Paris", "temp": 18}', [WEB_SEARCH]) == (
        '{"city": "Paris", "temp": 18}',
        [],
    )


def test_too_many_positional_arguments_is_not_a_call() -> None:
    assert parse_compat_answer("ask_user('a', ['b'], 'c')", [ASK])[1] == []


def test_extract_json_object() -> None:
    assert extract_json_object('noise {"a": 1} trailing') == {"a": 1}
    assert extract_json_object("no json here") is None


@pytest.mark.parametrize(
    "hostile",
    [
        "[" * 5000 + "]" * 5000,  # JSON nested too deeply
        "{" * 200_000,  # braces everywhere: each one a place JSON could start
        '{"a": [' * 20_000,  # and each start parses deep before it fails
        '{"tool_calls": [{"name": "search", "arguments": "' + "[" * 5000 + '"}]}',
        "search(" * 300 + ")" * 300,  # a call nested too deeply to parse
        "search(q=" + "[" * 5000 + "]" * 5000 + ")",
    ],
    ids=["deep-json", "braces", "deep-starts", "deep-arguments", "deep-call", "deep-literal"],
)
def test_hostile_text_is_read_as_text_quickly(hostile: str) -> None:
    tools = [ToolSpec(name="search", parameters={"properties": {"q": {}}})]
    text, calls = parse_compat_answer(hostile, tools)
    assert isinstance(text, str) and isinstance(calls, list)
