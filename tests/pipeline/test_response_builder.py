"""``ResponseBuilder``: the one fold of events into an answer, readable at any point."""

from __future__ import annotations

from pipeline import Request
from pipeline.events import (
    Chunk,
    Finish,
    ReasoningDelta,
    Retrying,
    TextDelta,
    TextEnd,
    ToolCall,
)
from pipeline.response import Response, ResponseBuilder, Usage

CALL = ToolCall(id="c1", name="search", arguments={"q": "sky"})
FINISH = Finish(
    stop_reason="tool_calls",
    input_tokens=12,
    output_tokens=7,
    cached_tokens=3,
    model="served",
    usage_source="provider",
)


def fed(*events: object) -> ResponseBuilder:
    answer = ResponseBuilder()
    for ev in events:
        answer.feed(ev)  # type: ignore[arg-type]
    return answer


def test_a_whole_run_builds_the_response() -> None:
    answer = fed(
        Request(model="m", messages=[{"role": "user", "content": "hi"}]),
        Retrying(attempt=1, delay_s=0.5, reason="rate_limited"),
        ReasoningDelta(text="think "),
        ReasoningDelta(text="hard"),
        TextDelta(text="Blue "),
        TextDelta(text="light."),
        TextEnd(text="Blue light."),
        CALL,
        FINISH,
    )
    assert answer.build() == Response(
        text="Blue light.",
        tool_calls=(CALL,),
        stop_reason="tool_calls",
        usage=Usage(input_tokens=12, output_tokens=7, cached_tokens=3, source="provider"),
        model="served",
        reasoning="think hard",
        retries=1,
    )


def test_what_was_delivered_so_far_is_readable_before_the_end() -> None:
    answer = fed(TextDelta(text="par"), TextDelta(text="tial"), CALL)
    assert (answer.text, answer.tool_calls, answer.finish) == ("partial", [CALL], None)
    assert answer.build() == Response(text="partial", tool_calls=(CALL,))
    answer.feed(TextDelta(text="!"))
    assert answer.text == "partial!"


def test_only_text_reasoning_and_tool_calls_count_as_delivered() -> None:
    assert not fed().delivered
    assert not fed(Chunk(text="raw"), Retrying(attempt=1, delay_s=0, reason="empty")).delivered
    assert not fed(FINISH).delivered
    assert fed(ReasoningDelta(text="hm")).delivered
    assert fed(TextDelta(text="a")).delivered
    assert fed(CALL).delivered


def test_without_a_finish_there_is_no_usage_and_no_retry_count() -> None:
    resp = fed(Retrying(attempt=1, delay_s=1, reason="transient"), TextDelta(text="x")).build()
    assert (resp.text, resp.stop_reason, resp.usage, resp.retries) == ("x", "", Usage(), 0)
