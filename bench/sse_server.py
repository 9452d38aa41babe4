"""A loopback OpenAI chat-completions server for the backend benchmark, in a process of its own.

``python bench/sse_server.py PORT_FILE`` listens on 127.0.0.1 (a free port, written
to PORT_FILE) and answers ``POST /v1/chat/completions`` with a stream chosen by
the request's ``model``:

- ``text-N``: N text deltas (one short word each), the finish chunk, a trailing
  usage chunk, ``[DONE]``: what OpenAI sends with ``include_usage``;
- ``tools-2x50``: two parallel tool calls, each in 50 argument fragments;
- ``paced-N``: N text deltas, one every ``PACE_S`` (a model that streams at 50
  tokens a second), then the finish, usage and ``[DONE]``; ``paced-N-MS``: one
  every MS milliseconds.

Every event is one HTTP chunk (chunked transfer encoding, keep-alive), written
as soon as it is due; bodies are rendered once per workload, so the server
spends next to nothing per event and the clients' costs are what is measured.
"""

from __future__ import annotations

import asyncio
import json
import sys
from functools import cache
from pathlib import Path

PACE_S = 0.02
HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)


def _event(payload: object) -> bytes:
    data = b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    return _event(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1700000000,
            "model": "bench-model-2025",
            "system_fingerprint": "fp_bench",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
    )


def _tail(finish: str, output: int) -> list[bytes]:
    usage = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model-2025",
        "choices": [],
        "usage": {"prompt_tokens": 12, "completion_tokens": output, "total_tokens": 12 + output},
    }
    done = b"data: [DONE]\n\n"
    return [_chunk({}, finish), _event(usage), b"%x\r\n%s\r\n" % (len(done), done), b"0\r\n\r\n"]


@cache
def events(model: str) -> tuple[bytes, ...]:
    """The body of ``model``'s answer, one HTTP chunk per event."""
    kind, _, size = model.partition("-")
    if kind in ("text", "paced"):
        n = int(size.split("-")[0])
        words = [_chunk({"role": "assistant", "content": ""})]
        words += [_chunk({"content": f"w{i % 100} "}) for i in range(n)]
        return (*words, *_tail("stop", n))
    if model == "tools-2x50":
        out = [_chunk({"role": "assistant", "content": None})]
        for call in range(2):
            start = {"index": call, "id": f"call_{call}", "type": "function"}
            out.append(
                _chunk({"tool_calls": [{**start, "function": {"name": "lookup", "arguments": ""}}]})
            )
            args = '{"query": "' + "x" * 48 + '"}'
            pieces = [args[i : i + 1] for i in range(len(args))][:50]
            pieces[-1] += args[50:]
            out += [
                _chunk({"tool_calls": [{"index": call, "function": {"arguments": p}}]})
                for p in pieces
            ]
        return (*out, *_tail("tool_calls", 100))
    raise KeyError(model)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length)) if length else {}
            model = str(body.get("model", "text-500"))
            writer.write(HEAD)
            paced, pace = 0, PACE_S
            if model.startswith("paced-"):
                _, count, *ms = model.split("-")
                paced, pace = int(count), (int(ms[0]) / 1000 if ms else PACE_S)
            start = asyncio.get_running_loop().time()
            for i, piece in enumerate(events(model)):
                if 1 <= i <= paced:  # delta i is due i * pace after the start, not later
                    await asyncio.sleep(start + i * pace - asyncio.get_running_loop().time())
                writer.write(piece)
                if paced or writer.transport.get_write_buffer_size() > 2**16:
                    await writer.drain()
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main(port_file: str) -> None:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))  # noqa: ASYNC240 (once, before serving)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
