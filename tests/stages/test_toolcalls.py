import pytest

from pipeline.errors import MalformedToolCall
from pipeline.events import ToolFragment as F
from stages.toolcalls import (
    MAX_REPAIR_CHARS,
    ToolCallAssembler,
    close_truncated_json,
    parse_arguments,
)


def assemble(*frags: F) -> list[tuple[str, str, dict[str, object], bool]]:
    asm = ToolCallAssembler()
    for f in frags:
        asm.add(f)
    return [(c.id, c.name, c.arguments, c.repaired) for c in asm.finish()]


def test_parallel_calls_with_own_indices_and_interleaved_continuations() -> None:
    out = assemble(
        F(index=0, id="a", name="search", arguments='{"q": '),
        F(index=1, id="b", name="open", arguments='{"path": '),
        F(index=0, arguments='"x"}'),
        F(index=1, arguments='"y"}'),
    )
    assert out == [("a", "search", {"q": "x"}, False), ("b", "open", {"path": "y"}, False)]


def test_bridge_sends_every_call_at_index_zero_with_distinct_ids() -> None:
    out = assemble(
        F(index=0, id="tool_1", name="search", arguments='{"query": "alpha"'),
        F(index=0, arguments="}"),
        F(index=0, id="tool_2", name="read", arguments='{"path": "beta"'),
        F(index=0, arguments="}"),
    )
    assert out == [
        ("tool_1", "search", {"query": "alpha"}, False),
        ("tool_2", "read", {"path": "beta"}, False),
    ]


def test_bridge_with_both_closings_at_the_end_is_repaired_per_call() -> None:
    # The shape from the reference's probe: both closers arrive after tool_2 opened.
    out = assemble(
        F(index=0, id="tool_1", name="search", arguments='{"query": "alpha"'),
        F(index=0, id="tool_2", name="read", arguments='{"path": "beta"'),
        F(index=0, arguments="}"),
        F(index=0, arguments="}"),
    )
    assert [(o[0], o[2]) for o in out] == [
        ("tool_1", {"query": "alpha"}),
        ("tool_2", {"path": "beta"}),
    ]


def test_id_repeated_on_every_fragment_goes_to_the_same_call() -> None:
    out = assemble(
        F(index=3, id="c1", name="f", arguments='{"a"'),
        F(index=3, id="c1", arguments=": 1}"),
    )
    assert out == [("c1", "f", {"a": 1}, False)]


def test_fragments_without_id_or_index_go_to_the_latest_call() -> None:
    out = assemble(F(id="c1", name="f", arguments='{"a": '), F(arguments="2}"))
    assert out == [("c1", "f", {"a": 2}, False)]


def test_id_less_first_fragment_adopts_the_id_that_follows_at_its_index() -> None:
    out = assemble(F(index=0, name="f"), F(index=0, id="late"), F(index=0, arguments="{}"))
    assert out == [("late", "f", {}, False)]


def test_calls_without_ids_get_unique_generated_ids() -> None:
    out = assemble(F(index=0, name="f", arguments="{}"), F(index=1, name="g", arguments="{}"))
    ids = [o[0] for o in out]
    assert len(set(ids)) == 2
    assert all(i.startswith("call_") for i in ids)


def test_empty_arguments_are_an_empty_object() -> None:
    assert parse_arguments("", tool_name="f") == ({}, False)


def test_reference_truncated_arguments_are_repaired_and_marked() -> None:
    raw = (
        '{"question":"What story structure should the agent use?",'
        '"options":["3-act structure","Beginning-Middle-End","Random paragraph"'
    )
    args, repaired = parse_arguments(raw, tool_name="ask_user")
    assert repaired is True
    assert args == {
        "question": "What story structure should the agent use?",
        "options": ["3-act structure", "Beginning-Middle-End", "Random paragraph"],
    }


def test_truncated_inside_a_string_keeps_the_partial_string() -> None:
    args, repaired = parse_arguments('{"a": 1, "note": "hello wor', tool_name="f")
    assert (args, repaired) == ({"a": 1, "note": "hello wor"}, True)


def test_dangling_key_is_dropped() -> None:
    assert parse_arguments('{"a": 1, "b":', tool_name="f") == ({"a": 1}, True)


def test_unrepairable_arguments_raise_with_context() -> None:
    with pytest.raises(MalformedToolCall, match="failed to parse the arguments") as info:
        parse_arguments('{"question": foo', tool_name="ask_user", tool_call_id="c9")
    assert info.value.tool_name == "ask_user"
    assert info.value.tool_call_id == "c9"
    assert info.value.raw_arguments == '{"question": foo'


def test_a_json_array_is_not_arguments() -> None:
    with pytest.raises(MalformedToolCall):
        parse_arguments("[1, 2]", tool_name="f")


def test_one_unparsable_call_means_no_calls_at_all() -> None:
    asm = ToolCallAssembler()
    asm.add(F(index=0, id="ok", name="f", arguments="{}"))
    asm.add(F(index=1, id="bad", name="g", arguments="not json"))
    with pytest.raises(MalformedToolCall):
        asm.finish()


def test_close_truncated_json_handles_escapes_and_nesting() -> None:
    assert close_truncated_json('{"a": ["x", {"b": "q\\') == '{"a": ["x", {"b": "q"}]}'
    assert close_truncated_json('{"a": [1, 2],') == '{"a": [1, 2]}'


def test_arguments_nested_thousands_deep_are_malformed_not_a_recursion_error() -> None:
    deep = '{"a": ' + "[" * 5000 + "]" * 5000 + "}"
    for raw in (deep, deep[:-1]):  # whole, and truncated (repair is attempted)
        with pytest.raises(MalformedToolCall, match="nested too deeply"):
            parse_arguments(raw, tool_name="t")


def test_huge_truncated_arguments_are_not_repaired_at_quadratic_cost() -> None:
    raw = '{"a": "' + "x" * (MAX_REPAIR_CHARS + 10)  # truncated: no closing quote or brace
    with pytest.raises(MalformedToolCall):
        parse_arguments(raw, tool_name="t")
