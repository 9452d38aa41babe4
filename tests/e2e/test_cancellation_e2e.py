"""Early exits close the HTTP response: the provider sees the connection close within 1 s.

Through both backends: litellm's, and the direct one's own connection pool.
"""

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline import Pipeline
from pipeline.events import TextDelta
from pipeline.testing import FakeClock, FakeProvider, Reply, Stall, Text


@pytest.fixture(params=["litellm", "openai"])
async def pipe(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Pipeline]:
    async with Pipeline.default(sleep=clock.sleep, clock=clock.time, backend=request.param) as p:
        yield p


def stalling_reply() -> Reply:
    # Two chunks, then silence until the client goes away.
    return Reply(steps=(Text("first "), Text("second "), Stall(None)))


async def test_break_closes_the_connection(pipe: Pipeline, fake: FakeProvider, request_to) -> None:  # type: ignore[no-untyped-def]
    fake.script(stalling_reply())
    async with pipe.stream(request_to()) as events:
        async for ev in events:
            if isinstance(ev, TextDelta):
                break
    conn = await fake.wait_closed(timeout=1.0)
    assert conn.closed_by == "client"


async def test_consumer_exception_closes_the_connection(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(stalling_reply())
    with pytest.raises(RuntimeError, match="consumer failed"):
        async with pipe.stream(request_to()) as events:
            async for ev in events:
                if isinstance(ev, TextDelta):
                    raise RuntimeError("consumer failed")
    conn = await fake.wait_closed(timeout=1.0)
    assert conn.closed_by == "client"


async def test_cancelled_task_closes_the_connection(
    pipe: Pipeline, fake: FakeProvider, request_to
) -> None:  # type: ignore[no-untyped-def]
    fake.script(stalling_reply())
    got_text = asyncio.Event()

    async def consume() -> None:
        async with pipe.stream(request_to()) as events:
            async for ev in events:
                if isinstance(ev, TextDelta):
                    got_text.set()

    task = asyncio.create_task(consume())
    await got_text.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    conn = await fake.wait_closed(timeout=1.0)
    assert conn.closed_by == "client"
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
