"""litellm's chunk objects as ``Chunk``s: wrong types are malformed answers, not crashes.

litellm passes some provider fields through untyped (the non-streamed path, some
routes); these are shaped like its objects, attribute for attribute.
"""

from __future__ import annotations

import re
from types import SimpleNamespace as NS
from typing import Any

import pytest

from pipeline.errors import MalformedResponse
from pipeline.events import Chunk, ToolFragment
from stages.dispatch.litellm.chunks import (
    provider_reported_usage,
    response_chunks,
    to_chunk,
    usage_dict,
)


def stream_chunk(content: Any = "hi", finish: Any = None, **delta: Any) -> NS:
    d = NS(content=content, reasoning_content=delta.get("reasoning"), tool_calls=delta.get("calls"))
    return NS(choices=[NS(delta=d, finish_reason=finish)], usage=None, model="m")


def call(index: Any = 0, arguments: Any = "{}", name: Any = "t") -> NS:
    return NS(index=index, id="c1", function=NS(name=name, arguments=arguments))


def test_a_well_formed_chunk() -> None:
    raw = stream_chunk("hi", calls=[call()])
    assert to_chunk(raw) == Chunk(
        text="hi",
        tool_fragments=(ToolFragment(index=0, id="c1", name="t", arguments="{}"),),
        model="m",
    )


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (stream_chunk(5), "delta.content"),
        (stream_chunk({"text": "x"}), "delta.content"),
        (stream_chunk("x", finish=7), "finish_reason"),
        (stream_chunk("x", reasoning=["r"]), "delta.reasoning_content"),
        (stream_chunk(None, calls=[call(arguments={"a": 1})]), "tool_calls.function.arguments"),
        (stream_chunk(None, calls=[call(index="zero")]), "index"),
        (stream_chunk(None, calls=[call(name=3)]), "tool_calls.function.name"),
        (NS(choices="abc", usage=None, model="m"), "cannot be read"),
        (NS(choices=[NS(delta=NS(), finish_reason=None)], usage=None, model="m"), "cannot be read"),
        (NS(choices=[], usage=None, model=["m"]), "model"),
    ],
)
def test_wrong_types_are_malformed_responses(raw: Any, field: str) -> None:
    with pytest.raises(MalformedResponse, match=re.escape(field)):
        to_chunk(raw)


def test_a_whole_response_with_content_a_number_is_malformed() -> None:
    message = NS(content=5, reasoning_content=None, tool_calls=None)
    response = NS(choices=[NS(message=message, finish_reason="stop")], usage=None, model="m")
    with pytest.raises(MalformedResponse, match=r"message\.content"):
        response_chunks(response)


def test_reasoning_finish_usage_and_the_model_convert_as_they_are() -> None:
    raw = stream_chunk(None, finish="stop", reasoning="thinking")
    raw.usage = NS(model_dump=lambda: {"prompt_tokens": 3, "completion_tokens": 5, "x": None})
    raw.model = "gpt-4o-2024-08-06"
    assert to_chunk(raw) == Chunk(
        reasoning="thinking",
        finish_reason="stop",
        usage={"prompt_tokens": 3, "completion_tokens": 5},
        model="gpt-4o-2024-08-06",
    )


def test_a_chunk_with_no_choices_carries_only_usage() -> None:
    raw = NS(choices=[], usage={"prompt_tokens": 1}, model="m")
    assert to_chunk(raw) == Chunk(usage={"prompt_tokens": 1}, model="m")


def test_tool_fragments_keep_their_index_id_and_pieces() -> None:
    first = NS(index=1, id="call_b", function=NS(name="search", arguments='{"q":'))
    more = NS(index=1, id=None, function=NS(name=None, arguments='"x"}'))
    none = NS(index=None, id=None, function=None)
    chunk = to_chunk(stream_chunk(None, calls=[first, more, none]))
    assert chunk.tool_fragments == (
        ToolFragment(index=1, id="call_b", name="search", arguments='{"q":'),
        ToolFragment(index=1, id=None, name=None, arguments='"x"}'),
        ToolFragment(index=None, id=None, name=None, arguments=""),
    )


def test_a_whole_response_plays_back_as_the_chunks_of_a_stream() -> None:
    calls = [
        NS(id="c1", function=NS(name="a", arguments="{}")),
        NS(id="c2", function=NS(name="b", arguments='{"n": 1}')),
    ]
    message = NS(content="text", reasoning_content="why", tool_calls=calls)
    response = NS(
        choices=[NS(message=message, finish_reason=None)],
        usage={"prompt_tokens": 2, "completion_tokens": 4},
        model="served",
    )
    assert response_chunks(response) == [
        Chunk(reasoning="why", model="served"),
        Chunk(text="text", model="served"),
        Chunk(
            tool_fragments=(
                ToolFragment(index=0, id="c1", name="a", arguments="{}"),
                ToolFragment(index=1, id="c2", name="b", arguments='{"n": 1}'),
            ),
            model="served",
        ),
        Chunk(finish_reason="tool_calls", model="served"),  # no reason given: tools were called
        Chunk(usage={"prompt_tokens": 2, "completion_tokens": 4}, model="served"),
    ]


def test_a_whole_response_with_no_choices_is_one_finish() -> None:
    assert response_chunks(NS(choices=[], usage=None, model="m")) == [
        Chunk(finish_reason="stop", model="m")
    ]


def test_usage_is_the_providers_only_when_a_raw_chunk_carried_it() -> None:
    assert provider_reported_usage(NS(chunks=[NS(usage=None), NS(usage={"prompt_tokens": 1})]))
    assert not provider_reported_usage(NS(chunks=[NS(usage=None)]))
    assert not provider_reported_usage(NS())
    assert usage_dict({"a": 1}) == {"a": 1}
    assert usage_dict(NS(prompt_tokens=1, completion_tokens=None)) == {"prompt_tokens": 1}
