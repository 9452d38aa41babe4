"""Bad input raises a clear error naming the field, and nothing reaches the provider."""

from typing import Any

import pytest

from pipeline import Pipeline
from pipeline.errors import InvalidRequest
from pipeline.testing import FakeProvider, Reply
from tests.e2e.conftest import fields_for

CASES: list[tuple[str, dict[str, Any], str]] = [
    ("empty model", {"model": ""}, "model"),
    ("messages not a list", {"messages": "hello"}, "messages"),
    ("unknown role", {"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ("user without content", {"messages": [{"role": "user"}]}, "messages[0].content"),
    (
        "tool result without id",
        {"messages": [{"role": "tool", "content": "42"}]},
        "messages[0].tool_call_id",
    ),
    ("tool without a name", {"tools": [{"description": "does things"}]}, "tools[0].name"),
    (
        "tool with non-object parameters",
        {"tools": [{"name": "t", "parameters": {"type": "array"}}]},
        "tools[0].parameters",
    ),
    ("max_tokens zero", {"max_tokens": 0}, "max_tokens"),
    ("max_tokens negative", {"max_tokens": -1}, "max_tokens"),
    ("extras not JSON", {"extra": {"temperature": {1, 2}}}, "extra.temperature"),
]


@pytest.mark.parametrize(("overrides", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("entry", ["stream", "acomplete", "complete"])
async def test_nothing_is_sent(
    pipe: Pipeline, fake: FakeProvider, overrides: dict[str, Any], field: str, entry: str
) -> None:
    fake.script(Reply.text("should never be served"))
    req = fields_for(fake, **overrides)
    with pytest.raises(InvalidRequest) as info:
        if entry == "stream":
            async with pipe.stream(req) as events:
                async for _ in events:
                    pass
        elif entry == "acomplete":
            await pipe.acomplete(req)
        else:
            pipe.complete(req)
    assert info.value.field == field
    assert field in str(info.value)
    assert fake.requests == []
    assert fake.connections == []
