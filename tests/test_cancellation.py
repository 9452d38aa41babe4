"""Early exits close every stage: break, a consumer exception, cancellation.

The end-to-end versions (the fake provider sees the HTTP connection closed)
live in tests/e2e/test_cancellation_e2e.py.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline import Pipeline, testing
from pipeline.context import Context
from pipeline.events import Chunk, Event, TextDelta
from pipeline.stage import Stage, stage

REQ = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


class Spy:
    """A pass-through stage that records whether its generator was finalized."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.finalized = 0

    def stage(self) -> Stage:
        async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
            try:
                async for ev in upstream:
                    yield ev
            finally:
                self.finalized += 1

        return stage(self.name, run)


def build(script: list[Chunk]) -> tuple[Pipeline, testing.ScriptedDispatch, list[Spy]]:
    dispatch = testing.scripted([script])
    spies = [Spy("spy_outer"), Spy("spy_inner")]
    p = (
        Pipeline.default()
        .replace("dispatch", dispatch)
        .insert_after("normalize", spies[0].stage())
        .insert_after("reassemble", spies[1].stage())
    )
    return p, dispatch, spies


LONG = [Chunk(text=f"t{i} ") for i in range(100)]


async def test_break_closes_every_stage() -> None:
    p, dispatch, spies = build(LONG)
    async with p.stream(REQ) as events:
        async for ev in events:
            if isinstance(ev, TextDelta):
                break
    assert dispatch.outcomes == ["closed"]
    assert [s.finalized for s in spies] == [1, 1]


async def test_consumer_exception_closes_every_stage() -> None:
    p, dispatch, spies = build(LONG)
    with pytest.raises(KeyError):
        async with p.stream(REQ) as events:
            async for _ in events:
                raise KeyError("consumer bug")
    assert dispatch.outcomes == ["closed"]
    assert [s.finalized for s in spies] == [1, 1]


async def test_cancellation_closes_every_stage() -> None:
    gate = asyncio.Event()
    release = asyncio.Event()

    async def slow_source(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async for _ in upstream:
            yield Chunk(text="first")
            gate.set()
            await release.wait()  # never released: the task is cancelled here
            yield Chunk(text="never")

    p, _, spies = build([])
    p = p.replace("dispatch", stage("dispatch", slow_source))

    async def consume() -> None:
        async with p.stream(REQ) as events:
            async for _ in events:
                pass

    task = asyncio.create_task(consume())
    await gate.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [s.finalized for s in spies] == [1, 1]


async def test_iterating_without_the_context_manager_works_to_the_end() -> None:
    p, dispatch, _ = build(testing.text_chunks("a", "b"))
    seen = [ev async for ev in p.stream(REQ) if isinstance(ev, TextDelta)]
    assert seen == [TextDelta(text="a"), TextDelta(text="b")]
    assert dispatch.outcomes == ["finished"]
