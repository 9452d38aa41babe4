"""The generic dispatch stage, run over scripted backends: no provider, no litellm.

What every backend gets from dispatch, once: bounded pulls (first chunk,
then idle), the attempt's recording, the instrument told of the first chunk,
the backend's stream closed on every way out, errors passed as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pipeline.backend import Backend
from pipeline.context import Attempt, Context
from pipeline.errors import ProviderTimeout, ProviderUnavailable
from pipeline.events import Chunk, Event, Request, TextDelta
from pipeline.policy import RetryPolicy
from pipeline.runner import closing
from pipeline.stage import PlainInstrument
from pipeline.testing import ScriptedBackend
from stages.dispatch import Dispatch, dispatch
from stages.dispatch.simulated import simulated
from tests.helpers import make_ctx, make_request

REQ = make_request()


class Gated:
    """A backend whose stream yields ``before``, then waits for ``release`` (a stall)."""

    name = "gated"

    def __init__(self, before: list[Chunk], after: list[Chunk] | None = None) -> None:
        self.before, self.after = before, after or []
        self.release = asyncio.Event()
        self.closed = 0
        self.streams: list[bool] = []
        self.prepared = 0

    async def prepare(self, request: Request, ctx: Context) -> None:
        self.prepared += 1

    async def send(self, request: Request, ctx: Context, *, stream: bool = True) -> Any:
        self.streams.append(stream)
        try:
            for chunk in self.before:
                yield chunk
            await self.release.wait()
            for chunk in self.after:
                yield chunk
        finally:
            self.closed += 1

    async def aclose(self) -> None:
        return None


class Told(PlainInstrument):
    """An instrument that records the ``first_chunk`` calls it gets."""

    def __init__(self) -> None:
        self.first: list[Attempt | None] = []

    def first_chunk(self, ctx: Context) -> None:
        self.first.append(ctx.attempt)


def ctx_with(**policy: Any) -> Context:
    return make_ctx(REQ, policy=RetryPolicy(**policy))


async def source(*events: Event) -> AsyncIterator[Event]:
    for ev in events:
        yield ev


async def drain(stage: Any, ctx: Context, *events: Event) -> list[Event]:
    return [ev async for ev in stage(source(*events), ctx)]


def test_the_scripted_backend_and_the_gated_one_are_backends() -> None:
    assert isinstance(ScriptedBackend([]), Backend) and isinstance(Gated([]), Backend)
    assert repr(dispatch(Gated([]))) == "Dispatch(gated, name='dispatch')"


async def test_chunks_pass_in_order_and_other_events_pass_around_the_request() -> None:
    backend = ScriptedBackend([["a", "b"]])
    before = TextDelta(text="upstream")
    out = await drain(dispatch(backend), make_ctx(REQ), before, REQ)
    assert out == [before, Chunk(text="a"), Chunk(text="b")]
    assert backend.calls == [REQ] and backend.outcomes == ["finished"]


async def test_each_request_upstream_is_one_send() -> None:
    backend = ScriptedBackend([["one"], ["two"]])
    out = await drain(dispatch(backend), make_ctx(REQ), REQ, REQ)
    assert out == [Chunk(text="one"), Chunk(text="two")]
    assert len(backend.calls) == 2


async def test_no_first_chunk_in_time_is_a_provider_timeout_and_the_stream_is_closed() -> None:
    backend = Gated([])
    with pytest.raises(ProviderTimeout, match=r"no first chunk .* within 0\.02s"):
        await drain(dispatch(backend), ctx_with(first_chunk_timeout_s=0.02), REQ)
    assert backend.closed == 1


async def test_a_stall_after_the_first_chunk_uses_the_idle_timeout() -> None:
    backend = Gated([Chunk(text="a")])
    stage = dispatch(backend)
    seen: list[Event] = []
    ctx = ctx_with(first_chunk_timeout_s=60, idle_timeout_s=0.02)
    with pytest.raises(ProviderTimeout, match=r"no next chunk .* within 0\.02s"):
        async for ev in stage(source(REQ), ctx):
            seen.append(ev)
    assert seen == [Chunk(text="a")] and backend.closed == 1


async def test_timeouts_off_wait_as_long_as_it_takes() -> None:
    backend = Gated([Chunk(text="a")], [Chunk(text="b")])
    ctx = ctx_with(first_chunk_timeout_s=None, idle_timeout_s=None)
    task = asyncio.ensure_future(drain(dispatch(backend), ctx, REQ))
    for _ in range(20):
        await asyncio.sleep(0)
    assert not task.done()
    backend.release.set()
    assert await task == [Chunk(text="a"), Chunk(text="b")]


async def test_the_attempts_recording_receives_every_chunk() -> None:
    recording: list[Chunk] = []
    ctx = make_ctx(REQ).for_attempt(Attempt(number=2, recording=recording))
    await drain(dispatch(ScriptedBackend([["x", "y"]])), ctx, REQ)
    assert recording == [Chunk(text="x"), Chunk(text="y")]


async def test_the_instrument_hears_of_the_first_chunk_once_per_send() -> None:
    told = Told()
    attempt = Attempt(number=1)
    ctx = make_ctx(REQ, instrument=told).for_attempt(attempt)
    await drain(dispatch(ScriptedBackend([["a", "b", "c"], ["d"]])), ctx, REQ, REQ)
    assert told.first == [attempt, attempt]


async def test_an_answer_with_no_chunks_tells_the_instrument_nothing() -> None:
    told = Told()
    await drain(dispatch(ScriptedBackend([[]])), make_ctx(REQ, instrument=told), REQ)
    assert told.first == []


async def test_a_break_downstream_closes_the_backends_stream() -> None:
    backend = ScriptedBackend([["a", "b", "c"]])
    seen: list[Event] = []
    async with closing(dispatch(backend)(source(REQ), make_ctx(REQ))) as events:
        async for ev in events:
            seen.append(ev)
            break
    assert seen == [Chunk(text="a")] and backend.outcomes == ["closed"]


async def test_cancellation_closes_the_backends_stream() -> None:
    backend = Gated([Chunk(text="a")])
    ctx = ctx_with(first_chunk_timeout_s=None, idle_timeout_s=None)
    task = asyncio.ensure_future(drain(dispatch(backend), ctx, REQ))
    for _ in range(20):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.closed == 1


async def test_a_backends_error_passes_as_it_is_and_its_stream_is_closed() -> None:
    boom = ProviderUnavailable("overloaded", status_code=503)
    backend = ScriptedBackend([["a", boom]])
    seen: list[Event] = []
    with pytest.raises(ProviderUnavailable) as info:
        async for ev in dispatch(backend)(source(REQ), make_ctx(REQ)):
            seen.append(ev)
    assert info.value is boom and seen == [Chunk(text="a")]
    assert backend.outcomes == ["raised"]


async def test_an_error_downstream_closes_the_backends_stream() -> None:
    backend = ScriptedBackend([["a", "b"]])

    async def consumer() -> None:  # a stage after dispatch, written as stages are
        async with closing(dispatch(backend)(source(REQ), make_ctx(REQ))) as events:
            async for _ in events:
                raise KeyError("downstream bug")

    with pytest.raises(KeyError):
        await consumer()
    assert backend.outcomes == ["closed"]


async def test_a_timeout_is_not_chained_to_anything_foreign() -> None:
    with pytest.raises(ProviderTimeout) as info:
        await drain(dispatch(Gated([])), ctx_with(first_chunk_timeout_s=0.01), REQ)
    assert info.value.__cause__ is None and info.value.__context__ is None


async def test_prepare_is_awaited_before_each_send() -> None:
    order: list[str] = []

    class Preparing(Gated):
        async def prepare(self, request: Request, ctx: Context) -> None:
            order.append(f"prepare {request.model}")

        async def send(self, request: Request, ctx: Context, *, stream: bool = True) -> Any:
            order.append("send")
            yield Chunk(text="a")

    out = await drain(dispatch(Preparing([])), make_ctx(REQ), REQ, REQ)
    assert out == [Chunk(text="a"), Chunk(text="a")]
    assert order == [f"prepare {REQ.model}", "send", f"prepare {REQ.model}", "send"]


async def test_simulated_asks_the_inner_backend_for_a_whole_answer_where_told() -> None:
    backend = Gated([Chunk(text="a")])
    backend.release.set()
    wrapped = simulated(backend, when=lambda ctx: ctx.request.model.endswith("broken"))
    await drain(dispatch(wrapped), make_ctx(REQ), REQ)
    broken = make_request(model="openai/broken")
    await drain(dispatch(wrapped), make_ctx(broken), broken)
    assert backend.streams == [True, False]
    assert wrapped.name == "gated" and repr(wrapped) == f"simulated({backend!r})"


async def test_simulated_follows_the_profile_by_default() -> None:
    backend = Gated([])
    backend.release.set()
    wrapped = simulated(backend)
    minimax = make_request(model="minimax/MiniMax-M2")
    await drain(dispatch(wrapped), make_ctx(minimax), minimax)
    await drain(dispatch(wrapped), make_ctx(REQ), REQ)
    assert backend.streams == [False, True]
    assert backend.prepared == 2  # dispatch prepared the inner backend through the wrapper


async def test_aclose_reaches_the_backend() -> None:
    class Counting(Gated):
        async def aclose(self) -> None:
            self.closed += 100

    backend = Counting([])
    stage: Dispatch[Counting] = Dispatch(backend, name="primary")
    await stage.aclose()
    assert backend.closed == 100 and stage.name == "primary"
