"""Whatever a provider sends, a call ends in a typed outcome, within the timeouts.

The malformed-output matrix: real litellm over real HTTP to the fake provider,
which sends exactly the bytes of each case (junk, wrong JSON types, absurd
nesting, huge lines, invalid UTF-8, HTML pages with 200 and 5xx, gzip that does
not decode, broken chunked framing, SSE error events, stalls), in the OpenAI and
the Anthropic format. Each case names its outcome: the answer (repaired where the
format allows), or the ``pipeline.errors`` class, how many requests the retry
rules make for it, and what the message must say.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.errors import (
    EmptyResponse,
    MalformedResponse,
    MalformedToolCall,
    PipelineError,
    ProviderTimeout,
    ProviderUnavailable,
    RetriesExhausted,
    StreamInterrupted,
)
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Raw, Reply, Stall, Wire
from stages.dispatch.litellm import close_loop_clients
from tests.e2e.conftest import warm_up

# litellm's pydantic models warn about a wrong type before litellm raises; as in
# production, a warning is not an error here
pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

FIRST_S, IDLE_S = 1.0, 0.3
#: requests a transient failure makes: the first and one retry
RETRIED = 2
#: the longest any case may take, retries included (virtual backoff, real stalls)
BOUND_S = 15.0


def sse(payload: Any) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def chunk(delta: dict[str, Any] | None = None, finish: Any = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
    return sse(
        {"id": "c", "object": "chat.completion.chunk", "model": "m", "choices": [choice], **extra}
    )


def text(t: Any) -> bytes:
    return chunk({"content": t})


def tool_call(arguments: Any, index: Any = 0) -> bytes:
    fn = {"name": "lookup", "arguments": arguments}
    return chunk({"tool_calls": [{"index": index, "id": "c1", "type": "function", "function": fn}]})


STOP, DONE = chunk(finish="stop"), b"data: [DONE]\n\n"


def deep(n: int) -> str:
    return "[" * n + "]" * n


def anthropic(*events: tuple[str, dict[str, Any]]) -> tuple[bytes, ...]:
    start = {
        "type": "message_start",
        "message": {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 3, "output_tokens": 0},
        },
    }
    out = [b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n"]
    out += [
        f"event: {name}\ndata: ".encode() + json.dumps(d).encode() + b"\n\n" for name, d in events
    ]
    return tuple(out)


def a_text(t: Any) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]


A_END = [
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

# (case, api, reply, outcome: "ok:<text>" or the error class, requests made, words in the message)
Case = tuple[str, str, Reply, Any, int, tuple[str, ...]]
CASES: list[Case] = [
    # --- OpenAI chat-completions streams
    (
        "junk lines between events",
        "openai",
        Reply.raw(text("Hel"), b"garbage here\n\n", b"::::\n\n", text("lo"), STOP, DONE),
        "ok:Hello",
        1,
        (),
    ),
    (
        "unknown fields and comments",
        "openai",
        Reply.raw(
            b": keep-alive\n\n",
            chunk({"content": "Hi", "x_odd": [1]}, x_extra={"a": 1}),
            STOP,
            DONE,
        ),
        "ok:Hi",
        1,
        (),
    ),
    (
        "data that is not JSON",
        "openai",
        Reply.raw(b"data: {not json\n\n", STOP, DONE),
        MalformedResponse,
        1,
        ("not JSON",),
    ),
    (
        "choices a string",
        "openai",
        Reply.raw(sse({"id": "c", "choices": "abc"}), DONE),
        MalformedResponse,
        1,
        ("shape",),
    ),
    (
        "content a number (litellm drops it)",
        "openai",
        Reply.raw(text(5), STOP, DONE),
        RetriesExhausted,
        RETRIED,
        ("no text",),
    ),
    (
        "tool call index a string (litellm drops it)",
        "openai",
        Reply.raw(tool_call("{}", index="zero"), STOP, DONE),
        RetriesExhausted,
        RETRIED,
        ("no text",),
    ),
    (
        "usage tokens as strings",
        "openai",
        Reply.raw(sse({"id": "c", "choices": [], "usage": {"prompt_tokens": "ten"}}), DONE),
        MalformedResponse,
        1,
        ("wrong type",),
    ),
    (
        "tool arguments nested 5,000 deep",
        "openai",
        Reply.raw(tool_call('{"a": ' + deep(5000) + "}"), chunk(finish="tool_calls"), DONE),
        MalformedToolCall,
        1,
        ("nested too deeply",),
    ),
    (
        "a chunk nested 5,000 deep",
        "openai",
        Reply.raw(b'data: {"a": ' + deep(5000).encode() + b"}\n\n", DONE),
        MalformedResponse,
        1,
        ("nested too deeply",),
    ),
    (
        "bytes that are not UTF-8",
        "openai",
        Reply.raw(b'data: {"choices": [{"index": 0, "delta": {"content": "\xff\xfe"}}]}\n\n', DONE),
        MalformedResponse,
        1,
        ("not UTF-8",),
    ),
    (
        "an HTML page with 200",
        "openai",
        Reply.raw(HTML, content_type="text/html; charset=utf-8"),
        MalformedResponse,
        1,
        ("text/html", "<!DOCTYPE html>"),
    ),
    (
        "a JSON document with 200",
        "openai",
        Reply.raw(b'{"object": "chat.completion", "choices": []}', content_type="application/json"),
        MalformedResponse,
        1,
        ("application/json", '{"object"'),
    ),
    (
        "plain text with 200, no events",
        "openai",
        Reply.raw(b"Service temporarily moved.\n", content_type="text/plain"),
        MalformedResponse,
        1,
        ("text/plain",),
    ),
    (
        "an HTML page with 502",
        "openai",
        Reply(status=502, headers={"content-type": "text/html"}, body=HTML),
        RetriesExhausted,
        RETRIED,
        ("502", "text/html", "<!DOCTYPE html>"),
    ),
    (
        "an HTML page with 500, no content type",
        "openai",
        Reply(status=500, body=b"<html>oops</html>"),
        RetriesExhausted,
        RETRIED,
        ("500",),
    ),
    (
        "gzip that does not decode",
        "openai",
        Reply.raw(b"this is not gzip", headers={"content-encoding": "gzip"}),
        MalformedResponse,
        1,
        ("decode",),
    ),
    (
        "an SSE error event first",
        "openai",
        Reply.raw(
            sse({"error": {"message": "The server is overloaded", "type": "server_error"}}), DONE
        ),
        RetriesExhausted,
        RETRIED,
        ("overloaded",),
    ),
    (
        "an SSE error event after text",
        "openai",
        Reply.raw(text("partial"), sse({"error": {"message": "upstream died"}}), DONE),
        StreamInterrupted,
        1,
        ("upstream died",),
    ),
    (
        # aiohttp, under litellm, then waits for ever: the hang the timeouts end
        "junk that breaks chunked framing, after a pause",
        "openai",
        Reply((Raw(b": ping\n\n"), Stall(0.05), Wire(b"garbage\r\n")), auto_end=False),
        RetriesExhausted,
        RETRIED,
        ("stalled",),
    ),
    (
        "a chunk size promising bytes that never come",
        "openai",
        Reply((Raw(text("x")), Wire(b"ffff\r\n")), auto_end=False),
        StreamInterrupted,
        1,
        ("stalled",),
    ),
    (
        "a stall after the headers",
        "openai",
        Reply((Stall(None),)),
        RetriesExhausted,
        RETRIED,
        ("stalled",),
    ),
    (
        "no answer at all (headers never sent)",
        "openai",
        Reply(delay=30.0),
        RetriesExhausted,
        RETRIED,
        ("stalled",),
    ),
    (
        "the body cut before any event",
        "openai",
        Reply.raw(b'data: {"choices": [{"ind', framing="close"),
        RetriesExhausted,
        RETRIED,
        (),
    ),
    (
        "the body cut after text",
        "openai",
        Reply.raw(text("half"), framing="close"),
        StreamInterrupted,
        1,
        (),
    ),
    ("an empty body with 200", "openai", Reply.raw(framing="close"), RetriesExhausted, RETRIED, ()),
    ("only [DONE]", "openai", Reply.raw(DONE), RetriesExhausted, RETRIED, ()),
    (
        "finish reason a number",
        "openai",
        Reply.raw(text("ok"), chunk(finish=7), DONE),
        "ok:ok",
        1,
        (),
    ),
    # --- Anthropic messages streams
    (
        "anthropic: a normal answer",
        "anthropic",
        Reply.raw(*anthropic(*a_text("Hi"), *A_END)),
        "ok:Hi",
        1,
        (),
    ),
    (
        "anthropic: an error event",
        "anthropic",
        Reply.raw(
            *anthropic(
                (
                    "error",
                    {
                        "type": "error",
                        "error": {"type": "overloaded_error", "message": "Overloaded"},
                    },
                )
            )
        ),
        RetriesExhausted,
        RETRIED,
        ("Overloaded",),
    ),
    (
        "anthropic: an HTML page with 200",
        "anthropic",
        Reply.raw(HTML, content_type="text/html"),
        MalformedResponse,
        1,
        ("text/html",),
    ),
    (
        "anthropic: data that is not JSON (litellm skips it)",
        "anthropic",
        Reply.raw(b"event: message_start\ndata: {nope\n\n"),
        RetriesExhausted,
        RETRIED,
        (),
    ),
    (
        "anthropic: bytes that are not UTF-8 (decoded with replacement)",
        "anthropic",
        Reply.raw(*(p.replace(b"caf", b"caf\xe9") for p in anthropic(*a_text("caf"), *A_END))),
        "ok:caf\ufffd",
        1,
        (),
    ),
    (
        "anthropic: text a number",
        "anthropic",
        Reply.raw(*anthropic(*a_text(5), *A_END)),
        (MalformedResponse, EmptyResponse, RetriesExhausted),
        0,
        (),
    ),
    (
        "anthropic: cut after text",
        "anthropic",
        Reply.raw(*anthropic(*a_text("half")), framing="close"),
        StreamInterrupted,
        1,
        (),
    ),
]


def test_the_matrix_has_more_than_twenty_kinds() -> None:
    assert len(CASES) > 20
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("api", "reply", "outcome", "requests", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
async def test_every_output_ends_typed_within_the_timeouts(
    fake: FakeProvider, api: str, reply: Reply, outcome: Any, requests: int, words: tuple[str, ...]
) -> None:
    await warm_up(fake)
    fake.respond_with(lambda r: reply)
    clock = FakeClock()
    pipe = Pipeline.default(
        backend="litellm",  # the direct backend: test_equivalence_e2e.py, which runs these too
        sleep=clock.sleep,
        clock=clock.time,
        policy=RetryPolicy(
            first_chunk_timeout_s=FIRST_S,
            idle_timeout_s=IDLE_S,
            transient_retries=1,
            empty_retries=1,
        ),
    )
    req = Request(
        model="openai/m" if api == "openai" else "anthropic/claude-x",
        messages=[{"role": "user", "content": "hi"}],
        tools=[{"name": "lookup", "parameters": {"type": "object", "properties": {}}}],
        api_base=fake.base_url if api == "openai" else fake.root_url,
        api_key="sk-test-key-not-real",
    )
    start = time.monotonic()
    try:
        async with asyncio.timeout(BOUND_S):
            resp = await pipe.acomplete(req)
    except PipelineError as exc:
        error: PipelineError | None = exc
    else:
        error = None
    assert time.monotonic() - start < BOUND_S
    if isinstance(outcome, str):
        assert error is None, repr(error)
        assert resp.text == outcome.removeprefix("ok:")
    else:
        assert isinstance(error, outcome), repr(error)
        for word in words:
            assert word in str(error), str(error)
    if requests:
        assert len(fake.requests) == requests
    if isinstance(error, RetriesExhausted):
        cause = error.__cause__
        assert isinstance(cause, (ProviderUnavailable, ProviderTimeout, EmptyResponse)), repr(cause)
    if isinstance(error, MalformedResponse):
        assert error.transient is False
    await assert_nothing_left_running(fake)


async def assert_nothing_left_running(fake: FakeProvider) -> None:
    """No task of ours pending; litellm's own fire-and-forget logging tasks finish
    by themselves (within a second); every connection closes."""
    pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    if pending:
        _, still = await asyncio.wait(pending, timeout=1.0)
        assert not still, still
    await close_loop_clients()
    await fake.wait_closed(timeout=2.0)


@pytest.mark.parametrize("backend", ["litellm", "openai"])
async def test_a_huge_single_line_arrives_whole_under_the_default_timeouts(
    fake: FakeProvider, backend: str
) -> None:
    """8 MB in one SSE line: parsing it takes a while, which is not a stall (and aiohttp's
    own line reader, which fails above 512 KiB, is not what reads it)."""
    fake.script(Reply.raw(text("x" * 8_000_000), STOP, DONE))
    req = Request(
        model="openai/m",
        messages=[{"role": "user", "content": "hi"}],
        api_base=fake.base_url,
        api_key="sk-test-key-not-real",
    )
    async with Pipeline.default(backend=backend, policy=RetryPolicy(transient_retries=0)) as pipe:
        resp = await pipe.acomplete(req)
    assert len(resp.text) == 8_000_000
    assert len(fake.requests) == 1
    await assert_nothing_left_running(fake)
