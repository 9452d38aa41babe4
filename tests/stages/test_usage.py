import pytest

from pipeline.events import Chunk, Finish, TextDelta, ToolCall
from stages.usage import parse_usage, usage
from tests.helpers import make_ctx, make_request, run_stage

FIN = Finish(stop_reason="stop", model="m")


async def test_usage_after_the_finish_chunk_lands_on_finish() -> None:
    # reassemble emits Finish at the very end, so a usage chunk that followed
    # the finish chunk arrives here before Finish.
    out = await run_stage(
        usage(),
        [TextDelta(text="hi"), Chunk(usage={"prompt_tokens": 10, "completion_tokens": 5}), FIN],
    )
    assert out == [
        TextDelta(text="hi"),
        Finish(
            stop_reason="stop", model="m", input_tokens=10, output_tokens=5, usage_source="provider"
        ),
    ]


async def test_latest_non_zero_usage_wins() -> None:
    out = await run_stage(
        usage(),
        [
            Chunk(usage={"prompt_tokens": 1, "completion_tokens": 1}),
            Chunk(usage={"prompt_tokens": 0, "completion_tokens": 0}),
            Chunk(usage={"prompt_tokens": 7, "completion_tokens": 3}),
            FIN,
        ],
    )
    assert out[-1].input_tokens == 7  # type: ignore[union-attr]
    assert out[-1].output_tokens == 3  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "cached"),
    [
        (
            {
                "prompt_tokens": 9,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 6},
            },
            6,
        ),
        ({"prompt_tokens": 9, "completion_tokens": 1, "cache_read_input_tokens": 4}, 4),
        ({"prompt_tokens": 9, "completion_tokens": 1, "prompt_tokens_details": None}, 0),
        (
            {
                "prompt_tokens": 9,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 0},
                "cache_read_input_tokens": 2,
            },
            2,
        ),
    ],
)
def test_cached_tokens_from_either_field(raw: dict[str, object], cached: int) -> None:
    assert parse_usage(raw) == (9, 1, cached)


def test_anthropic_names_are_understood() -> None:
    assert parse_usage({"input_tokens": 12, "output_tokens": 3}) == (12, 3, 0)


async def test_usage_invented_by_the_client_library_is_labelled_estimated() -> None:
    out = await run_stage(
        usage(),
        [Chunk(usage={"prompt_tokens": 5, "completion_tokens": 2}, usage_estimated=True), FIN],
    )
    assert out[-1] == Finish(
        stop_reason="stop", model="m", input_tokens=5, output_tokens=2, usage_source="estimated"
    )


async def test_no_usage_at_all_is_estimated_from_request_and_answer() -> None:
    req = make_request(messages=[{"role": "user", "content": "x" * 400}])
    out = await run_stage(usage(), [TextDelta(text="y" * 40), FIN], make_ctx(req))
    assert out[-1] == Finish(
        stop_reason="stop", model="m", input_tokens=100, output_tokens=10, usage_source="estimated"
    )


async def test_tool_call_arguments_count_towards_the_output_estimate() -> None:
    call = ToolCall(id="c", name="search", arguments={"q": "z" * 30})
    out = await run_stage(usage(), [call, FIN])
    assert out[0] == call
    assert out[-1].output_tokens == (6 + len('{"q":"' + "z" * 30 + '"}') + 3) // 4  # type: ignore[union-attr]


async def test_usage_chunks_are_consumed() -> None:
    out = await run_stage(usage(), [Chunk(usage={"prompt_tokens": 1, "completion_tokens": 1}), FIN])
    assert not any(isinstance(e, Chunk) for e in out)
