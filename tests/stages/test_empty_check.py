import logging

import pytest

from pipeline.errors import EmptyResponse
from pipeline.events import Finish, ReasoningDelta, TextDelta, ToolCall
from stages.empty_check import empty_check
from tests.helpers import run_stage


async def test_no_text_and_no_tool_call_raises() -> None:
    with pytest.raises(EmptyResponse, match="no text and no tool call"):
        await run_stage(empty_check(), [Finish(stop_reason="stop", model="m")])


async def test_reasoning_alone_is_still_empty() -> None:
    with pytest.raises(EmptyResponse):
        await run_stage(
            empty_check(), [ReasoningDelta(text="thinking"), Finish(stop_reason="stop")]
        )


@pytest.mark.parametrize("content", [TextDelta(text="x"), ToolCall(id="c", name="f", arguments={})])
async def test_content_passes(content: TextDelta | ToolCall) -> None:
    fin = Finish(stop_reason="stop")
    assert await run_stage(empty_check(), [content, fin]) == [content, fin]


async def test_length_with_nothing_is_returned_with_a_clear_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    fin = Finish(stop_reason="length", model="m")
    with caplog.at_level(logging.WARNING, logger="llmpipe.empty_check"):
        assert await run_stage(empty_check(), [fin]) == [fin]
    assert "max_tokens=4096" in caplog.text
    assert "not retrying" in caplog.text
