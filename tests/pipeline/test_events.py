import msgspec
import pytest

from pipeline import events
from pipeline.events import (
    Chunk,
    FallingBack,
    Finish,
    ReasoningDelta,
    Request,
    Retrying,
    TextDelta,
    TextEnd,
    ToolCall,
    ToolFragment,
)
from pipeline.fallbacks import Target
from pipeline.request import ToolSpec

SAMPLES = [
    Request(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        tools=[ToolSpec(name="t")],
        extra={"temperature": 0.2},
        fallbacks=[Target(model="b", api_base="http://h:1/v1", extra={"seed": 1}, priority=2)],
    ),
    Chunk(
        text="a",
        tool_fragments=(ToolFragment(index=0, id="c", name="f", arguments="{"),),
        usage={"prompt_tokens": 1},
    ),
    TextDelta(text="a"),
    ReasoningDelta(text="r"),
    TextEnd(text="all"),
    ToolCall(id="c", name="f", arguments={"x": [1, 2]}, repaired=True),
    Retrying(attempt=2, delay_s=1.5, reason="rate_limited"),
    FallingBack(from_model="a", to_model="b", reason="unavailable"),
    Finish(
        stop_reason="stop",
        input_tokens=3,
        output_tokens=4,
        cached_tokens=1,
        model="m",
        usage_source="provider",
        cost_usd=0.0125,
    ),
]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_event_round_trips_through_json(event: events.Event) -> None:
    data = events.encode(event)
    assert events.decode(data) == event
    assert msgspec.json.decode(data)["type"] == msgspec.inspect.type_info(type(event)).tag  # type: ignore[attr-defined]


def test_tags_are_explicit_snake_case_and_distinct() -> None:
    tags = [msgspec.json.decode(events.encode(e))["type"] for e in SAMPLES]
    assert tags == [
        "request",
        "chunk",
        "text_delta",
        "reasoning_delta",
        "text_end",
        "tool_call",
        "retrying",
        "falling_back",
        "finish",
    ]


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_events_are_frozen(event: events.Event) -> None:
    field = next(iter(type(event).__struct_fields__))
    with pytest.raises(AttributeError):
        setattr(event, field, None)


def test_encoding_a_request_leaves_the_key_out() -> None:
    r = Request(model="m", messages=[{"role": "user", "content": "hi"}], api_key="sk-secret")
    data = events.encode(r)
    assert b"sk-secret" not in data
    assert events.decode(data) == msgspec.structs.replace(r, api_key=None)


def test_encoding_a_request_leaves_its_fallbacks_keys_out_too() -> None:
    r = Request(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        fallbacks=[{"model": "b", "api_key": "sk-fallback-secret"}, Target(model="c")],
    )
    data = events.encode(r)
    assert b"sk-fallback-secret" not in data
    back = events.decode(data)
    assert isinstance(back, Request) and back.fallbacks == [Target(model="b"), Target(model="c")]
    assert r.fallbacks is not None and r.fallbacks[0].api_key == "sk-fallback-secret"  # unchanged


def test_decoding_validates_requests() -> None:
    with pytest.raises(Exception, match="max_tokens"):
        events.decode(
            b'{"type":"request","model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0}'
        )
