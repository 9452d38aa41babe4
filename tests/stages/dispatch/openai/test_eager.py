"""A request leaves in the step that sends it, before other ready tasks run.

``started`` with scripted coroutines (what it runs at once, what it hands to a
task, cancellation and errors), then the direct backend over a raw loopback
socket: the request's bytes are in the server's socket before a task queued
right behind the call has run.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from collections.abc import AsyncIterator

import pytest

from pipeline import Pipeline, Request
from pipeline.events import TextDelta
from pipeline.policy import RetryPolicy
from stages.dispatch.openai.eager import request_class, started


async def test_a_coroutine_that_never_waits_has_run_when_started_returns() -> None:
    done: list[str] = []

    async def write() -> None:
        done.append("written")

    rest = started(write())
    assert done == ["written"]
    assert await asyncio.create_task(rest) is None
    assert done == ["written"]


async def test_the_rest_waits_in_the_task_and_resumes_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    drained: asyncio.Future[str] = loop.create_future()
    done: list[str] = []

    async def write() -> None:
        done.append("headers")
        done.append(await drained)
        await asyncio.sleep(0)  # a bare yield, as asyncio.sleep(0) makes
        done.append("eof")

    task = asyncio.create_task(started(write()))
    assert done == ["headers"]
    await asyncio.sleep(0)
    assert not task.done()
    drained.set_result("body")
    await task
    assert done == ["headers", "body", "eof"]


async def test_awaiting_the_rest_directly_works_too() -> None:
    loop = asyncio.get_running_loop()
    drained: asyncio.Future[int] = loop.create_future()
    loop.call_soon(drained.set_result, 2)

    async def write() -> None:
        assert await drained == 2

    await started(write())


@pytest.mark.parametrize("task_ran", [False, True], ids=["before-the-task-ran", "waiting"])
async def test_a_cancellation_reaches_the_coroutine(task_ran: bool) -> None:
    loop = asyncio.get_running_loop()
    never: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def write() -> None:
        try:
            await never
        except asyncio.CancelledError:
            seen.append("cancelled")  # aiohttp closes the connection here
            raise

    task = asyncio.create_task(started(write()))
    if task_ran:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["cancelled"]
    assert never.cancelled() is task_ran  # before, it was never waited on


async def test_an_error_in_the_first_step_is_raised_by_the_task_not_by_started() -> None:
    async def write() -> None:
        raise ConnectionResetError("peer went away")

    rest = started(write())
    with pytest.raises(ConnectionResetError, match="peer went away"):
        await asyncio.create_task(rest)


async def test_an_error_after_the_first_wait_is_raised_by_the_task() -> None:
    async def write() -> None:
        await asyncio.sleep(0)
        raise BrokenPipeError("later")

    with pytest.raises(BrokenPipeError, match="later"):
        await asyncio.create_task(started(write()))


def test_sessions_write_eagerly_only_where_aiohttp_does_not() -> None:
    eager = request_class()
    if sys.version_info >= (3, 12):
        assert eager is None
    else:
        import aiohttp

        assert eager is not None
        assert issubclass(eager, aiohttp.ClientRequest)
        assert request_class() is eager  # made once


# --- the direct backend over a raw socket ---------------------------------------------------

ANSWER = (
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":'
    b'[{"index":0,"delta":{"content":"ok"},"finish_reason":null}]}\n\n'
    b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":'
    b'[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n'
    b"data: [DONE]\n\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    b"Content-Length: %d\r\n\r\n" % len(ANSWER) + ANSWER
)


async def read_request(conn: socket.socket) -> bytes:
    """One whole request (head and body) from ``conn``."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        data += await loop.sock_recv(conn, 65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += await loop.sock_recv(conn, 65536)
    return head + b"\r\n\r\n" + body


def waiting(conn: socket.socket) -> bytes:
    """What the server's socket has received and nobody read yet (not consumed)."""
    try:
        return conn.recv(65536, socket.MSG_PEEK)
    except BlockingIOError:
        return b""


@pytest.fixture
async def listener() -> AsyncIterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def test_the_request_is_on_the_wire_before_the_next_ready_task_runs(
    listener: socket.socket,
) -> None:
    loop = asyncio.get_running_loop()
    port = listener.getsockname()[1]
    req = Request(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        api_base=f"http://127.0.0.1:{port}/v1",
        api_key="sk-eager-test-not-real",
    )
    pipe = Pipeline.default(backend="openai", policy=RetryPolicy(transient_retries=0))

    async def answer() -> str:
        async with pipe.stream(req) as events:
            return "".join([ev.text async for ev in events if type(ev) is TextDelta])

    first = asyncio.create_task(answer())  # opens the connection the others reuse
    conn, _ = await loop.sock_accept(listener)
    conn.setblocking(False)
    try:
        await read_request(conn)
        await loop.sock_sendall(conn, RESPONSE)
        assert await first == "ok"

        async def look() -> bytes:  # ready right behind the call: runs after its step
            return waiting(conn)

        for _ in range(3):  # the same call again and again, on the pooled connection
            call = asyncio.create_task(answer())
            seen = await asyncio.create_task(look())
            head, _, body = seen.partition(b"\r\n\r\n")
            assert head.startswith(b"POST /v1/chat/completions HTTP/1.1")
            assert json.loads(body)["messages"] == [{"role": "user", "content": "hi"}]
            assert await read_request(conn) == seen
            await loop.sock_sendall(conn, RESPONSE)
            assert await call == "ok"
    finally:
        conn.close()
        await pipe.aclose()
