"""The module-level facades, called the way users call them: many times in one
process, mixed with ``Pipeline.default()``, from async and sync code."""

from __future__ import annotations

import pipeline
from pipeline import Pipeline
from pipeline.events import TextDelta
from pipeline.testing import FakeProvider, RecordedRequest, Reply


def numbered(r: RecordedRequest) -> Reply:
    return Reply.text("answer ", str(r.index))


async def test_every_facade_works_every_time_interleaved_with_pipeline_default(
    fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.respond_with(numbered)
    req = request_to()
    got: list[str] = []
    for _ in range(3):
        got.append((await pipeline.acomplete(req)).text)
        assert isinstance(Pipeline.default(), Pipeline)
        async with pipeline.stream(req) as events:
            got.append("".join([e.text async for e in events if isinstance(e, TextDelta)]))
        assert isinstance(Pipeline.default(), Pipeline)
        got.append(pipeline.complete(req).text)  # inside this loop: on a worker thread
    assert got == [f"answer {i}" for i in range(9)]
    assert pipeline.default() is pipeline.default()


def test_complete_facade_without_a_running_loop_every_time(fake: FakeProvider, request_to) -> None:  # type: ignore[no-untyped-def]
    fake.respond_with(numbered)
    req = request_to()
    got = []
    for _ in range(4):
        got.append(pipeline.complete(req).text)
        assert callable(pipeline.default)
        Pipeline.default()
    assert got == [f"answer {i}" for i in range(4)]
