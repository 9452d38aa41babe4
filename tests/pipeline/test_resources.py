"""Pipelines own their stages' resources: ``async with`` / ``aclose()`` release them.

A backend with pooled connections stands in for litellm's: it records every
``aclose()`` and the event loop it ran on, so a test can tell that each loop's
resources were released by that loop, exactly once per pipeline close, and
that the pipeline stays usable afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from pipeline import Pipeline, Request
from pipeline.context import Context
from pipeline.events import Chunk
from pipeline.testing import FakeClock, text_chunks
from stages.dispatch import dispatch
from stages.retry import retry
from stages.tool_compat import tool_compat

REQ = Request(model="openai/m", messages=[{"role": "user", "content": "hi"}])


class Pooled:
    """A backend that answers "ok" and records on which loop it sent and was closed."""

    name = "pooled"

    def __init__(self, *, fail_close: bool = False) -> None:
        self.sent_on: list[asyncio.AbstractEventLoop] = []
        self.closed_on: list[asyncio.AbstractEventLoop] = []
        self.fail_close = fail_close

    async def send(
        self, request: Request, ctx: Context, *, stream: bool = True
    ) -> AsyncIterator[Chunk]:
        self.sent_on.append(asyncio.get_running_loop())
        for chunk in text_chunks("ok"):
            yield chunk

    async def aclose(self) -> None:
        self.closed_on.append(asyncio.get_running_loop())
        if self.fail_close:
            raise OSError("the pool would not close")


class Entry:
    """A shared-state entry holding something per loop, as the Redis gate's clients."""

    def __init__(self) -> None:
        self.closed = 0

    async def aclose(self) -> None:
        self.closed += 1


def default_on(backend: Pooled) -> Pipeline:
    clock = FakeClock()
    return Pipeline.default(backend=backend, sleep=clock.sleep, clock=clock.time)


async def test_leaving_async_with_closes_the_backend_of_the_dispatch_inside_the_segments() -> None:
    backend = Pooled()
    async with default_on(backend) as p:
        assert (await p.acomplete(REQ)).text == "ok"
        assert backend.closed_on == []
    assert backend.closed_on == [asyncio.get_running_loop()]


async def test_the_pipeline_stays_usable_after_aclose() -> None:
    backend = Pooled()
    p = default_on(backend)
    await p.aclose()
    assert (await p.acomplete(REQ)).text == "ok"
    await p.aclose()
    assert len(backend.closed_on) == 2


def test_complete_releases_what_its_own_loop_opened() -> None:
    backend = Pooled()
    p = default_on(backend)
    assert p.complete(REQ).text == "ok"
    assert p.complete(REQ).text == "ok"
    # each complete() ran its own loop and closed on that loop, before it ended
    assert backend.closed_on == backend.sent_on
    assert backend.sent_on[0] is not backend.sent_on[1]


async def test_complete_inside_a_running_loop_leaves_the_callers_loop_alone() -> None:
    backend = Pooled()
    p = default_on(backend)
    assert (await p.acomplete(REQ)).text == "ok"  # on this loop
    assert p.complete(REQ).text == "ok"  # on a worker thread's loop
    assert backend.closed_on == [backend.sent_on[1]]
    assert asyncio.get_running_loop() not in backend.closed_on


async def test_a_stage_in_two_places_is_closed_once_and_shared_entries_too() -> None:
    backend = Pooled()
    one = dispatch(backend)
    p = Pipeline([retry(tool_compat(one))])
    entry = p.context(REQ).shared.setdefault("test.entry", Entry)
    p2 = p.insert_before("retry", dispatch(backend, name="other"))  # same backend, other stage
    await p2.aclose()
    assert len(backend.closed_on) == 2  # two dispatch stages, each closes its backend
    assert entry.closed == 1
    await p.aclose()
    assert len(backend.closed_on) == 3 and entry.closed == 2  # derived pipelines share state


async def test_every_resource_is_closed_even_when_one_fails() -> None:
    failing, fine = Pooled(fail_close=True), Pooled()
    p = Pipeline([dispatch(failing, name="a"), dispatch(fine, name="b")])
    with pytest.raises(OSError, match="would not close"):
        await p.aclose()
    assert len(fine.closed_on) == 1


async def test_release_loop_is_a_deprecated_aclose() -> None:
    backend = Pooled()
    p = default_on(backend)
    with pytest.warns(DeprecationWarning, match="aclose"):
        await p.release_loop()
    assert backend.closed_on == [asyncio.get_running_loop()]
