"""Stall timeouts count the wait for bytes, not time the event loop was blocked.

The loop is blocked on purpose (a busy callback of a few tens of milliseconds)
while the bytes are already in the socket: a plain ``asyncio.timeout`` gives up on
them; ``within`` must not. A true stall still times out, and the rule itself is
checked with numbers.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator

import pytest

from pipeline.timeouts import LAG_TOLERANCE_S, Stalled, stall_decision, within


def test_on_time_and_never_busy_expires() -> None:
    assert stall_decision(now=10.0005, due=10.0, busy=0.0, given=0.0, seconds=10.0) == (
        "expire",
        10.0,
    )


def test_a_late_timer_gives_the_blocked_time_back_from_now() -> None:
    assert stall_decision(now=15.0, due=10.0, busy=5.0, given=0.0, seconds=10.0) == (
        "extend",
        20.0,
    )


def test_our_own_cpu_time_is_given_back() -> None:
    assert stall_decision(now=10.0, due=10.0, busy=3.0, given=0.0, seconds=10.0) == (
        "extend",
        13.0,
    )
    # given back once: the next fire, on time, expires
    assert stall_decision(now=13.0, due=13.0, busy=3.0, given=3.0, seconds=10.0)[0] == "expire"


def test_what_is_given_back_is_capped_by_the_timeout() -> None:
    assert stall_decision(now=10.0, due=10.0, busy=25.0, given=0.0, seconds=10.0) == (
        "extend",
        20.0,
    )
    assert stall_decision(now=20.0, due=20.0, busy=35.0, given=10.0, seconds=10.0)[0] == "expire"


def test_jitter_below_the_tolerance_is_not_busy_time() -> None:
    busy = LAG_TOLERANCE_S / 2
    assert stall_decision(now=10.0, due=10.0, busy=busy, given=0.0, seconds=1.0)[0] == "expire"


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    yield reader, writer
    reader.close()
    writer.close()


def block_loop(seconds: float, then_send: socket.socket | None = None) -> None:
    """Send (the bytes arrive), then keep the event loop busy: a starved process."""
    if then_send is not None:
        then_send.send(b"x")
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@pytest.mark.parametrize("block", [0.011, 0.05], ids=["just-late", "very-late"])
async def test_bytes_that_arrived_while_the_loop_was_blocked_are_read(
    pair: tuple[socket.socket, socket.socket], block: float
) -> None:
    reader, writer = pair
    loop = asyncio.get_running_loop()
    loop.call_soon(block_loop, block, writer)
    assert await within(loop.sock_recv(reader, 10), 0.01) == b"x"


async def test_our_own_processing_during_the_wait_is_not_counted() -> None:
    async def parse_a_huge_line() -> str:  # 40 ms of our CPU, in 2 ms steps
        for _ in range(20):
            block_loop(0.002)
            await asyncio.sleep(0)
        return "parsed"

    # the timeout is 30 ms; the time spent parsing is not a stall
    assert await within(parse_a_huge_line(), 0.03) == "parsed"


async def test_a_true_stall_still_times_out_after_a_blocked_loop(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, _ = pair
    loop = asyncio.get_running_loop()
    loop.call_soon(block_loop, 0.03)
    start = loop.time()
    with pytest.raises(Stalled):
        await within(loop.sock_recv(reader, 10), 0.01)
    # the busy 30 ms are given back only up to the 10 ms timeout: about 40 ms in all
    assert loop.time() - start < 0.5


async def test_a_true_stall_times_out(pair: tuple[socket.socket, socket.socket]) -> None:
    reader, _ = pair
    with pytest.raises(Stalled) as info:
        await within(asyncio.get_running_loop().sock_recv(reader, 10), 0.005)
    assert isinstance(info.value, TimeoutError)
    assert info.value.__context__ is None


async def test_a_timeout_error_of_the_awaitable_is_not_a_stall() -> None:
    async def fails() -> None:
        raise TimeoutError("the awaitable's own")

    with pytest.raises(TimeoutError) as info:
        await within(fails(), 1.0)
    assert not isinstance(info.value, Stalled)


async def test_cancelling_the_waiter_is_not_a_stall(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, _ = pair
    task = asyncio.create_task(within(asyncio.get_running_loop().sock_recv(reader, 10), 5.0))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_no_limit_waits_for_the_result() -> None:
    async def value() -> int:
        return 7

    assert await within(value(), None) == 7
