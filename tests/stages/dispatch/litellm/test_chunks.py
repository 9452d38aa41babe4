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
from stages.dispatch.litellm.chunks import response_chunks, to_chunk


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
