import pytest

from pipeline.errors import MalformedToolCall
from pipeline.events import Chunk, Finish, ReasoningDelta, Retrying, TextDelta, TextEnd, ToolCall
from pipeline.events import ToolFragment as F
from stages.reassemble import reassemble
from tests.helpers import Source, make_ctx, run_stage

USAGE = {"prompt_tokens": 3, "completion_tokens": 2}


async def test_text_deltas_then_text_end_then_finish() -> None:
    out = await run_stage(
        reassemble(),
        [Chunk(text="Hel", model="m1"), Chunk(text="lo"), Chunk(finish_reason="stop")],
    )
    assert out == [
        TextDelta(text="Hel"),
        TextDelta(text="lo"),
        TextEnd(text="Hello"),
        Finish(stop_reason="stop", model="m1"),
    ]


async def test_the_model_is_the_first_one_a_chunk_names() -> None:
    """The provider names the model that answered on its chunks; litellm's trailing
    usage chunk names the requested one instead, which must not win."""
    out = await run_stage(
        reassemble(),
        [
            Chunk(text="Hi", model="gpt-4o-2024-08-06"),
            Chunk(finish_reason="stop", model="gpt-4o-2024-08-06"),
            Chunk(usage=USAGE, model="gpt-4o"),
        ],
    )
    assert out[-1] == Finish(stop_reason="stop", model="gpt-4o-2024-08-06")


async def test_text_is_sent_before_the_stream_ends() -> None:
    src = Source([Chunk(text="first"), Chunk(text="second"), Chunk(finish_reason="stop")])
    events = reassemble()(src(), make_ctx())
    first = await anext(events)
    assert first == TextDelta(text="first")
    assert src.pulled == 1
    await events.aclose()  # type: ignore[attr-defined]
    assert src.closed


async def test_tool_calls_after_text_end_and_before_finish() -> None:
    out = await run_stage(
        reassemble(),
        [
            Chunk(text="Let me look."),
            Chunk(tool_fragments=(F(index=0, id="a", name="search", arguments='{"q":'),)),
            Chunk(tool_fragments=(F(index=1, id="b", name="open", arguments='{"p": 1}'),)),
            Chunk(tool_fragments=(F(index=0, arguments=' "x"}'),)),
            Chunk(finish_reason="tool_calls"),
        ],
    )
    assert out[1:] == [
        TextEnd(text="Let me look."),
        ToolCall(id="a", name="search", arguments={"q": "x"}),
        ToolCall(id="b", name="open", arguments={"p": 1}),
        Finish(stop_reason="tool_calls", model="openai/test-model"),
    ]


async def test_one_finish_even_when_the_provider_sends_two() -> None:
    out = await run_stage(
        reassemble(), [Chunk(text="a", finish_reason="stop"), Chunk(finish_reason="stop")]
    )
    assert [type(e) for e in out].count(Finish) == 1


async def test_finish_is_made_up_when_the_provider_sends_none() -> None:
    out = await run_stage(reassemble(), [Chunk(text="a")])
    assert out[-1] == Finish(stop_reason="stop", model="openai/test-model")
    out = await run_stage(
        reassemble(), [Chunk(tool_fragments=(F(index=0, id="c", name="f", arguments="{}"),))]
    )
    assert out[-1] == Finish(stop_reason="tool_calls", model="openai/test-model")


async def test_usage_chunks_pass_through_for_the_usage_stage_wherever_they_come() -> None:
    before = Chunk(usage=USAGE)
    after = Chunk(usage={"prompt_tokens": 4, "completion_tokens": 2})
    out = await run_stage(
        reassemble(), [before, Chunk(text="a"), Chunk(finish_reason="stop"), after]
    )
    assert out == [
        before,
        TextDelta(text="a"),
        after,
        TextEnd(text="a"),
        Finish(stop_reason="stop", model="openai/test-model"),
    ]


async def test_reasoning_is_streamed_as_its_own_events() -> None:
    out = await run_stage(
        reassemble(), [Chunk(reasoning="hmm"), Chunk(text="yes"), Chunk(finish_reason="stop")]
    )
    assert out[0] == ReasoningDelta(text="hmm")
    assert out[1] == TextDelta(text="yes")


async def test_truncated_arguments_are_repaired_and_marked() -> None:
    out = await run_stage(
        reassemble(),
        [
            Chunk(
                tool_fragments=(
                    F(index=0, id="a", name="ask", arguments='{"q": "why", "opts": ["x"'),
                )
            ),
            Chunk(finish_reason="length"),
        ],
    )
    assert out[0] == ToolCall(
        id="a", name="ask", arguments={"q": "why", "opts": ["x"]}, repaired=True
    )
    assert out[1] == Finish(stop_reason="length", model="openai/test-model")


async def test_unrepairable_arguments_raise_and_no_partial_tool_call_is_emitted() -> None:
    out: list[object] = []
    with pytest.raises(MalformedToolCall):
        async for ev in reassemble()(
            Source(
                [
                    Chunk(tool_fragments=(F(index=0, id="a", name="ok", arguments="{}"),)),
                    Chunk(tool_fragments=(F(index=1, id="b", name="bad", arguments='{"q": foo'),)),
                    Chunk(finish_reason="tool_calls"),
                ]
            )(),
            make_ctx(),
        ):
            out.append(ev)
    assert not any(isinstance(e, ToolCall) for e in out)


async def test_other_events_pass_through_in_order() -> None:
    r = Retrying(attempt=1, delay_s=0.5, reason="rate_limited")
    out = await run_stage(reassemble(), [r, Chunk(text="a")])
    assert out[:2] == [r, TextDelta(text="a")]
