"""Tests for the loopback fake provider, driven over real HTTP with httpx."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from pipeline.testing.fakeprovider import (
    Done,
    Drop,
    FakeProvider,
    FinishStep,
    Raw,
    Reasoning,
    RecordedRequest,
    Reply,
    Stall,
    Text,
    ToolDelta,
    UsageStep,
    Wire,
)

CHAT = "/chat/completions"
STREAM = {"model": "gpt-fake", "stream": True, "messages": []}
PLAIN = {"model": "gpt-fake", "messages": []}


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvider]:
    async with FakeProvider() as provider:
        yield provider


@pytest.fixture
async def client(fake: FakeProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=fake.base_url, timeout=5) as c:
        yield c


async def sse(client: httpx.AsyncClient, path: str = CHAT, body: Any = None) -> list[str]:
    """The ``data:`` payloads of one streamed response."""
    async with client.stream("POST", path, json=body or STREAM) as resp:
        assert resp.headers["content-type"] == "text/event-stream"
        assert resp.headers["transfer-encoding"] == "chunked"
        return [line[6:] async for line in resp.aiter_lines() if line.startswith("data: ")]


def chunks(data: list[str]) -> list[dict[str, Any]]:
    return [json.loads(d) for d in data if d != "[DONE]"]


async def test_streamed_text_chunks_usage_chunk_and_done(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply.text("Hel", "lo", usage=UsageStep(7, 2, cached_tokens=3)))
    data = await sse(client)
    assert data[-1] == "[DONE]"
    assert data.count("[DONE]") == 1
    objs = chunks(data)
    assert {o["id"] for o in objs} == {"chatcmpl-fake-0"}
    assert {o["model"] for o in objs} == {"gpt-fake"}
    assert all(o["object"] == "chat.completion.chunk" for o in objs)
    deltas = [o["choices"][0]["delta"] for o in objs[:2]]
    assert deltas == [{"role": "assistant", "content": "Hel"}, {"content": "lo"}]
    assert objs[2]["choices"] == [{"index": 0, "delta": {}, "finish_reason": "stop"}]
    assert "usage" not in objs[2]
    assert objs[3]["choices"] == []
    assert objs[3]["usage"] == {
        "prompt_tokens": 7,
        "completion_tokens": 2,
        "total_tokens": 9,
        "prompt_tokens_details": {"cached_tokens": 3},
    }
    assert len(objs) == 4


async def test_usage_on_finish_chunk_and_empty_reply(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    usage = UsageStep(4, 1, cache_read_input_tokens=2)
    fake.script(Reply.text("x", usage=usage, usage_after_finish=False), Reply.empty("length"))
    objs = chunks(await sse(client))
    assert len(objs) == 2
    assert objs[1]["choices"][0]["finish_reason"] == "stop"
    assert objs[1]["usage"]["cache_read_input_tokens"] == 2
    assert objs[1]["usage"]["total_tokens"] == 5
    empty = await sse(client)
    assert empty[-1] == "[DONE]"
    objs = chunks(empty)
    assert [o["choices"] for o in objs] == [
        [{"index": 0, "delta": {}, "finish_reason": "length"}],
        [],
    ]
    assert objs[1]["usage"]["completion_tokens"] == 0


async def test_tool_deltas_with_explicit_index_patterns(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    steps = (
        ToolDelta(0, "a", "f", '{"x":'),
        ToolDelta(0, arguments="1}"),
        ToolDelta(0, "b", "g", ""),
        ToolDelta(None, arguments='{"y":2}'),
        FinishStep("tool_calls"),
    )
    fake.script(Reply(steps), Reply(steps))
    objs = chunks(await sse(client))
    calls = [o["choices"][0]["delta"]["tool_calls"] for o in objs[:4]]
    started = {"type": "function", "index": 0}
    assert calls == [
        [{**started, "id": "a", "function": {"name": "f", "arguments": '{"x":'}}],
        [{"index": 0, "function": {"arguments": "1}"}}],
        [{**started, "id": "b", "function": {"name": "g", "arguments": ""}}],
        [{"function": {"arguments": '{"y":2}'}}],
    ]
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "role" not in objs[1]["choices"][0]["delta"]
    assert objs[4]["choices"][0]["finish_reason"] == "tool_calls"
    message = (await client.post(CHAT, json=PLAIN)).json()["choices"][0]["message"]
    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x":1}'}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": '{"y":2}'}},
    ]


async def test_tool_calls_helper_splits_arguments(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply.tool_calls(("c1", "search", {"q": "cats"}), ("c2", "time", "{}")))
    objs = chunks(await sse(client))
    frags = [o["choices"][0]["delta"]["tool_calls"][0] for o in objs[:4]]
    assert [(f["index"], f.get("id"), f["function"].get("name")) for f in frags] == [
        (0, "c1", "search"),
        (0, None, None),
        (1, "c2", "time"),
        (1, None, None),
    ]
    assert frags[0]["function"]["arguments"] + frags[1]["function"]["arguments"] == '{"q":"cats"}'
    assert frags[0]["function"]["arguments"]
    assert frags[1]["function"]["arguments"]
    assert objs[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert objs[5]["choices"] == []
    assert objs[5]["usage"]["prompt_tokens"] == 10


async def test_non_streamed_assembly(fake: FakeProvider, client: httpx.AsyncClient) -> None:
    fake.script(
        Reply(
            (
                Reasoning("think "),
                Reasoning("hard"),
                Text("Hel"),
                Text("lo"),
                FinishStep("length"),
                UsageStep(3, 4),
            )
        )
    )
    resp = await client.post(CHAT, json=PLAIN)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    assert int(resp.headers["content-length"]) == len(resp.content)
    out = resp.json()
    assert out["object"] == "chat.completion"
    assert out["model"] == "gpt-fake"
    assert out["choices"] == [
        {
            "index": 0,
            "finish_reason": "length",
            "message": {"role": "assistant", "content": "Hello", "reasoning_content": "think hard"},
        }
    ]
    assert out["usage"]["total_tokens"] == 7


async def test_error_reply_openai_and_anthropic_shapes(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    err = Reply.error(
        429, "slow down", headers={"Retry-After": "2"}, type="rate_limit_error", code="rate_limited"
    )
    fake.script(err, err)
    resp = await client.post(CHAT, json=STREAM)  # an error is never streamed
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {
        "error": {"message": "slow down", "type": "rate_limit_error", "code": "rate_limited"}
    }
    resp = await client.post("/messages", json=PLAIN)
    assert resp.status_code == 429
    assert resp.json() == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }


async def test_verbatim_body_and_raw_stream_bytes(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(
        Reply(status=529, body=b'{"boom": 1}', headers={"x-extra": "y"}),
        Reply((Raw(b"data: {not json\n\n"), Text("ok"))),
    )
    resp = await client.post(CHAT, json=PLAIN)
    assert (resp.status_code, resp.content, resp.headers["x-extra"]) == (529, b'{"boom": 1}', "y")
    data = await sse(client)
    assert data[0] == "{not json"
    assert json.loads(data[1])["choices"][0]["delta"]["content"] == "ok"
    assert data[-1] == "[DONE]"


async def test_drop_mid_stream_and_before_response(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply((Text("partial"), Drop())), Reply((Text("never"), Drop())))
    got: list[str] = []

    async def read_into(lines: list[str]) -> None:
        async with client.stream("POST", CHAT, json=STREAM) as resp:
            async for line in resp.aiter_lines():
                if line:
                    lines.append(line)

    with pytest.raises(httpx.RemoteProtocolError):
        await read_into(got)
    assert len(got) == 1
    assert "partial" in got[0]
    with pytest.raises(httpx.RemoteProtocolError):
        await client.post(CHAT, json=PLAIN)
    conns = fake.connections
    assert [c.closed_by for c in conns] == ["server", "server"]
    assert all(c.requests == 1 for c in conns)


async def test_stall_until_client_closes_is_recorded_promptly(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply((Text("first"), Stall(), Text("never"))))
    async with client.stream("POST", CHAT, json=STREAM) as resp:
        async for line in resp.aiter_lines():
            if line:
                assert "first" in line
                break
        assert fake.connections[0].closed_at is None
        closed_at = time.monotonic()
    record = await fake.wait_closed(timeout=1.0)
    assert record.closed_by == "client"
    assert record.closed_at is not None
    assert record.closed_at - closed_at < 0.5


async def test_stall_with_seconds_then_continues(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply((Text("a"), Stall(0.05), Text("b")), delay=0.02))
    start = time.monotonic()
    objs = chunks(await sse(client))
    assert time.monotonic() - start >= 0.07
    assert [o["choices"][0]["delta"].get("content") for o in objs[:2]] == ["a", "b"]


async def test_wait_closed_times_out_while_keep_alive_connection_is_open(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply.text("hi"))
    await client.post(CHAT, json=PLAIN)
    with pytest.raises(TimeoutError):
        await fake.wait_closed(timeout=0.05)


async def test_keep_alive_and_connection_close(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply.text("one"), Reply.text("two"), Reply.text("three"))
    await sse(client)
    second = await client.post(CHAT, json=PLAIN)
    assert second.json()["choices"][0]["message"]["content"] == "two"
    reqs = fake.requests
    assert [r.index for r in reqs] == [0, 1]
    assert reqs[0].connection_id == reqs[1].connection_id
    assert len(fake.connections) == 1
    assert fake.connections[0].requests == 2
    third = await client.post(CHAT, json=PLAIN, headers={"Connection": "close"})
    assert third.headers["connection"] == "close"
    record = await fake.wait_closed()
    assert (record.closed_by, record.requests) == ("server", 3)


async def test_responder_after_script_and_default_500(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    resp = await client.post(CHAT, json=PLAIN)
    assert resp.status_code == 500
    assert "no scripted reply for request 0" in resp.json()["error"]["message"]
    seen: list[int] = []

    def responder(req: RecordedRequest) -> Reply:
        seen.append(req.index)
        return Reply.error(429) if req.index < 5 else Reply.text(f"ok {req.index}")

    fake.script(Reply.text("scripted"))
    fake.respond_with(responder)
    statuses = [(await client.post(CHAT, json=PLAIN)).status_code for _ in range(4)]
    assert statuses == [200, 429, 429, 429]
    last = (await client.post(CHAT, json=PLAIN)).json()
    assert last["choices"][0]["message"]["content"] == "ok 5"
    assert seen == [2, 3, 4, 5]


async def test_default_reply_serves_every_request() -> None:
    async with FakeProvider(default=Reply.text("same")) as fake, httpx.AsyncClient() as c:
        for _ in range(2):
            resp = await c.post(fake.base_url + CHAT, json=PLAIN)
            assert resp.json()["choices"][0]["message"]["content"] == "same"


async def test_anthropic_stream_event_sequence(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(
        Reply(
            (
                Reasoning("hm"),
                Text("Hi"),
                Text("!"),
                ToolDelta(id="t1", name="f", arguments='{"a"'),
                ToolDelta(arguments=":1}"),
                FinishStep("tool_calls"),
                UsageStep(7, 3, cache_read_input_tokens=5),
            )
        )
    )
    async with client.stream("POST", "/messages", json=STREAM) as resp:
        lines = [line async for line in resp.aiter_lines() if line]
    names = [line[7:] for line in lines if line.startswith("event: ")]
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: ")]
    assert names == [e["type"] for e in events]
    assert names == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start = events[0]["message"]
    assert (start["model"], start["role"], start["content"]) == ("gpt-fake", "assistant", [])
    assert start["usage"] == {"input_tokens": 7, "output_tokens": 0, "cache_read_input_tokens": 5}
    assert [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"] == [
        "thinking",
        "text",
        "tool_use",
    ]
    assert events[8]["content_block"] | {"input": None} == {
        "type": "tool_use",
        "id": "t1",
        "name": "f",
        "input": None,
    }
    assert events[2]["delta"] == {"type": "thinking_delta", "thinking": "hm"}
    assert events[6]["delta"] == {"type": "text_delta", "text": "!"}
    assert events[10]["delta"] == {"type": "input_json_delta", "partial_json": ":1}"}
    assert events[12]["delta"]["stop_reason"] == "tool_use"
    assert events[12]["usage"] == {"output_tokens": 3}
    assert all(line != "data: [DONE]" for line in lines)


async def test_anthropic_non_streamed_message(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(
        Reply(
            (
                Text("He"),
                Text("y"),
                ToolDelta(id="t", name="f", arguments='{"k"'),
                ToolDelta(arguments=": [1]}"),
                FinishStep("stop", UsageStep(2, 9)),
            )
        )
    )
    out = (await client.post("/messages", json=PLAIN)).json()
    assert out["type"] == "message"
    assert out["stop_reason"] == "end_turn"
    assert out["content"] == [
        {"type": "text", "text": "Hey"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"k": [1]}},
    ]
    assert out["usage"] == {"input_tokens": 2, "output_tokens": 9}


async def test_request_recording_and_unknown_path(
    fake: FakeProvider, client: httpx.AsyncClient
) -> None:
    fake.script(Reply.text("kept"))
    missing = await client.post("/models", json={"q": 1}, headers={"X-Trace-ID": "abc"})
    assert missing.status_code == 404
    resp = await client.post(CHAT, json=PLAIN, headers={"Authorization": "Bearer k"})
    assert resp.json()["choices"][0]["message"]["content"] == "kept"  # 404 took no script
    reqs = await fake.wait_requests(2)
    assert [(r.method, r.path, r.index) for r in reqs] == [
        ("POST", "/v1/models", 0),
        ("POST", "/v1/chat/completions", 1),
    ]
    assert reqs[0].headers["x-trace-id"] == "abc"
    assert reqs[1].headers["authorization"] == "Bearer k"
    assert all(k == k.lower() for r in reqs for k in r.headers)
    assert reqs[1].body == PLAIN
    assert json.loads(reqs[1].raw_body) == PLAIN
    assert reqs[0].received_at <= reqs[1].received_at
    with pytest.raises(TimeoutError):
        await fake.wait_requests(3, timeout=0.02)
    fake.reset()
    assert fake.requests == []
    assert fake.connections == []


def test_sync_use_with_blocking_client() -> None:
    fake = FakeProvider(default=Reply.text("sync"))
    with fake, httpx.Client(base_url=fake.base_url) as c:
        resp = c.post(CHAT, json=PLAIN)
        assert resp.json()["choices"][0]["message"]["content"] == "sync"
        url = fake.root_url
    fake.stop()  # idempotent
    assert fake.connections[0].closed_at is not None
    with pytest.raises(httpx.ConnectError), httpx.Client() as c:
        c.post(url + "/v1" + CHAT, json=PLAIN)


def test_done_step_stops_auto_done() -> None:
    with FakeProvider() as fake, httpx.Client(base_url=fake.base_url) as c:
        fake.script(Reply((Text("a"), Done(), Text("after"))))
        with c.stream("POST", CHAT, json=STREAM) as resp:
            data = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert data[1] == "[DONE]"
    assert data.count("[DONE]") == 1
    assert "after" in data[2]


async def test_stop_aborts_a_stalled_stream_cleanly(caplog: pytest.LogCaptureFixture) -> None:
    got: list[str] = []

    async def read_rest(lines: AsyncIterator[str]) -> None:
        async for line in lines:
            got.append(line)

    async with FakeProvider() as fake, httpx.AsyncClient(base_url=fake.base_url) as c:
        fake.script(Reply((Text("a"), Stall())))
        async with c.stream("POST", CHAT, json=STREAM) as resp:
            lines = resp.aiter_lines()
            assert "a" in await anext(lines)
            await asyncio.to_thread(fake.stop)
            with pytest.raises(httpx.RemoteProtocolError):
                await read_rest(lines)
    assert got == [""]  # only the blank line ending the first event
    assert [(c.closed_by, c.requests) for c in fake.connections] == [("server", 1)]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


async def raw_exchange(fake: FakeProvider, body: bytes = b'{"stream": true}') -> bytes:
    """One request over a bare socket; every byte of the answer until the server closes."""
    reader, writer = await asyncio.open_connection(fake.host, int(fake.root_url.rsplit(":", 1)[1]))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    data = await reader.read()
    writer.close()
    return data


async def test_raw_replies_send_exactly_their_bytes(fake: FakeProvider) -> None:
    fake.script(Reply.raw(b"<html>", b"hi</html>", content_type="text/html"))
    head, _, body = (await raw_exchange(fake)).partition(b"\r\n\r\n")
    assert b"content-type: text/html" in head and b"transfer-encoding: chunked" in head
    assert body == b"6\r\n<html>\r\n9\r\nhi</html>\r\n0\r\n\r\n"  # no [DONE] added


async def test_close_framing_ends_the_body_by_closing(fake: FakeProvider) -> None:
    fake.script(Reply.raw(b"data: 1\n\n", b"data: 2\n\n", framing="close"))
    head, _, body = (await raw_exchange(fake)).partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head and b"connection: close" in head
    assert body == b"data: 1\n\ndata: 2\n\n"
    assert fake.connections[0].closed_by == "server"


async def test_wire_bytes_break_the_chunked_framing(fake: FakeProvider) -> None:
    fake.script(Reply((Raw(b"data: 1\n\n"), Wire(b"garbage\r\n")), auto_end=False))
    _, _, body = (await raw_exchange(fake)).partition(b"\r\n\r\n")
    assert body == b"9\r\ndata: 1\n\n\r\ngarbage\r\n0\r\n\r\n"
