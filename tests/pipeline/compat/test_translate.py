"""Pipeline events to the reference's stream events, and failures to ``StreamErrorEvent``."""

import pytest

from pipeline.compat import (
    FinishEvent,
    ReasoningDeltaEvent,
    ReasoningStartEvent,
    StreamErrorEvent,
    TextDeltaEvent,
    TextEndEvent,
    ToolCallEvent,
)
from pipeline.compat.translate import EventTranslator
from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    EmptyResponse,
    MalformedToolCall,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RetriesExhausted,
    StreamInterrupted,
)
from pipeline.events import Event, Finish, ReasoningDelta, Retrying, TextDelta, TextEnd, ToolCall


def translate(*events: Event) -> list[object]:
    t = EventTranslator("configured-model")
    return [out for ev in events for out in t.feed(ev)]


def test_the_reference_order_text_end_after_the_tool_calls() -> None:
    out = translate(
        TextDelta(text="Let me "),
        TextDelta(text="search."),
        TextEnd(text="Let me search."),
        ToolCall(id="c1", name="search", arguments={"q": "x"}),
        ToolCall(id="c2", name="open", arguments={}),
        Finish(stop_reason="tool_calls", input_tokens=10, output_tokens=5, cached_tokens=2),
    )
    assert out == [
        TextDeltaEvent(content="Let me ", snapshot="Let me "),
        TextDeltaEvent(content="search.", snapshot="Let me search."),
        ToolCallEvent(tool_use_id="c1", tool_name="search", tool_input={"q": "x"}),
        ToolCallEvent(tool_use_id="c2", tool_name="open", tool_input={}),
        TextEndEvent(full_text="Let me search."),
        FinishEvent(
            stop_reason="tool_calls",
            input_tokens=10,
            output_tokens=5,
            cached_tokens=2,
            model="configured-model",
        ),
    ]


def test_reasoning_starts_once_and_retrying_is_not_an_event() -> None:
    out = translate(
        Retrying(attempt=1, delay_s=2.0, reason="rate_limited"),
        ReasoningDelta(text="hmm "),
        ReasoningDelta(text="ok"),
        TextDelta(text="42"),
        TextEnd(text="42"),
        Finish(stop_reason="stop", model="served-model"),
    )
    assert out == [
        ReasoningStartEvent(),
        ReasoningDeltaEvent(content="hmm "),
        ReasoningDeltaEvent(content="ok"),
        TextDeltaEvent(content="42", snapshot="42"),
        TextEndEvent(full_text="42"),
        FinishEvent(stop_reason="stop", model="served-model"),
    ]


def test_a_failure_drops_the_held_text_end() -> None:
    t = EventTranslator("m")
    assert t.feed(TextDelta(text="part")) == (TextDeltaEvent(content="part", snapshot="part"),)
    assert t.feed(TextEnd(text="part")) == ()
    error = t.fail(ProviderUnavailable("connection reset"))
    assert isinstance(error, StreamErrorEvent)
    assert t.feed(Finish(stop_reason="stop")) == (FinishEvent(stop_reason="stop", model="m"),)


def _exhausted(cause: Exception) -> RetriesExhausted:
    try:
        raise RetriesExhausted("gave up", attempts=4, reason="x") from cause
    except RetriesExhausted as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "recoverable"),
    [
        (RateLimited("429"), True),
        (ProviderTimeout("stalled"), True),
        (ProviderUnavailable("503"), True),
        (EmptyResponse("nothing"), True),
        (BadRequest("bad"), False),
        (AuthenticationFailed("no"), False),
        (_exhausted(RateLimited("429")), True),
        (_exhausted(ProviderUnavailable("503")), True),
        (StreamInterrupted("cut", partial_text="a", transient=True), True),
        (StreamInterrupted("cut", partial_text="a", transient=False), False),
        (ConnectionError("reset"), True),
        (ValueError("bug"), False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_recoverable_means_asking_again_can_help(exc: Exception, recoverable: bool) -> None:
    assert EventTranslator("m").fail(exc).recoverable is recoverable


def test_error_text_names_the_error_and_masks_the_key() -> None:
    key = "sk-live-abcdefghijklmnop"
    error = EventTranslator("m", api_key=key).fail(AuthenticationFailed(f"bad key {key}"))
    assert error.error.startswith("AuthenticationFailed: ")
    assert key not in error.error


def test_a_malformed_tool_call_reads_as_the_reference_said_it() -> None:
    cause = MalformedToolCall("x", tool_name="ask_user", tool_call_id="c1", raw_arguments="{")
    try:
        raise StreamInterrupted("cut", partial_text="a", transient=False) from cause
    except StreamInterrupted as exc:
        error = EventTranslator("m").fail(exc)
    assert error.error.startswith("Failed to parse tool call arguments for 'ask_user'")
    assert error.recoverable is False
