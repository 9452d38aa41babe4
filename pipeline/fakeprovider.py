"""A loopback, scripted fake LLM provider that speaks real HTTP/1.1.

Why a real server instead of mocking LiteLLM or httpx: the faults that matter in production
(a stream that stalls, a dropped TCP connection, a malformed SSE event, a 429 with
``retry-after``, a client hanging up mid-stream) only behave realistically when every layer
(LiteLLM, the provider SDK, httpx, sockets) is exercised. The server runs on 127.0.0.1 on
its *own* thread and event loop, so it keeps serving while a sync caller blocks its thread,
and one instance can serve async tests running in any other loop.

Each request takes the next scripted :class:`Reply` (FIFO), else the responder, else the
default reply, else an HTTP 500. A reply is a sequence of steps rendered as an OpenAI
chat-completions stream/object (``/v1/chat/completions``) or an Anthropic messages
stream/object (``/v1/messages``). Every request and connection is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from types import MappingProxyType, TracebackType
from typing import Any, Literal, TypeAlias, TypeVar

import msgspec

__all__ = [
    "ConnectionRecord",
    "Done",
    "Drop",
    "ErrorDetail",
    "FakeProvider",
    "Finish",
    "Raw",
    "Reasoning",
    "RecordedRequest",
    "Reply",
    "Stall",
    "Step",
    "Text",
    "ToolDelta",
    "Usage",
]

_T = TypeVar("_T")
Api: TypeAlias = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class Text:
    """A content delta."""

    text: str


@dataclass(frozen=True)
class Reasoning:
    """OpenAI ``delta.reasoning_content``; Anthropic a ``thinking`` block."""

    text: str


@dataclass(frozen=True)
class ToolDelta:
    """One tool-call fragment, sent exactly as given so any index/id pattern can be tested."""

    index: int | None = 0
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(frozen=True)
class Usage:
    """Token usage; as a step (OpenAI) a usage-only chunk with ``"choices": []``."""

    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int = 0
    cache_read_input_tokens: int | None = None


@dataclass(frozen=True)
class Finish:
    """A chunk carrying ``finish_reason`` (and ``usage`` on the same chunk if given)."""

    reason: str = "stop"
    usage: Usage | None = None


@dataclass(frozen=True)
class Stall:
    """Send nothing for ``seconds`` (None: until the client closes), watching for EOF."""

    seconds: float | None = None


@dataclass(frozen=True)
class Drop:
    """Abort the TCP connection at once: no terminating chunk, no ``[DONE]``."""


@dataclass(frozen=True)
class Done:
    """The stream terminator: ``data: [DONE]`` (OpenAI) or ``message_stop`` (Anthropic)."""


@dataclass(frozen=True)
class Raw:
    """Bytes written as-is as one body chunk, for malformed streams."""

    data: bytes


Step: TypeAlias = Text | Reasoning | ToolDelta | Finish | Usage | Stall | Drop | Done | Raw

_USAGE = Usage(10, 5)
_NO_USAGE = Usage(10, 0)
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class ErrorDetail:
    """An API error, rendered at send time in the shape of the API the request used."""

    message: str
    type: str = "error"
    code: str | None = None


def _tail(finish: str | None, usage: Usage | None, after: bool) -> tuple[Step, ...]:
    if finish is None:
        return () if usage is None else (usage,)
    if usage is None or after:
        return (Finish(finish),) + (() if usage is None else (usage,))
    return (Finish(finish, usage),)


@dataclass(frozen=True)
class Reply:
    """What the server does for one request. ``body`` (or ``error_detail``) wins over steps."""

    steps: tuple[Step, ...] = ()
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay: float = 0.0
    error_detail: ErrorDetail | None = None

    @classmethod
    def text(
        cls,
        *parts: str,
        finish: str | None = "stop",
        usage: Usage | None = _USAGE,
        usage_after_finish: bool = True,
    ) -> Reply:
        """A text reply; usage as a separate chunk after finish, as OpenAI's include_usage."""
        return cls(tuple(Text(p) for p in parts) + _tail(finish, usage, usage_after_finish))

    @classmethod
    def tool_calls(
        cls,
        *calls: tuple[str, str, Mapping[str, Any] | str],
        finish: str | None = "tool_calls",
        usage: Usage | None = _USAGE,
    ) -> Reply:
        """(id, name, arguments) per call at index 0, 1, ..; arguments split in 2 fragments."""
        steps: list[Step] = []
        for i, (call_id, name, args) in enumerate(calls):
            text = args if isinstance(args, str) else msgspec.json.encode(args).decode()
            half = len(text) // 2
            steps += [ToolDelta(i, call_id, name, text[:half]), ToolDelta(i, arguments=text[half:])]
        return cls(tuple(steps) + _tail(finish, usage, True))

    @classmethod
    def error(
        cls,
        status: int,
        message: str = "error",
        *,
        headers: Mapping[str, str] = _NO_HEADERS,
        type: str = "error",
        code: str | None = None,
    ) -> Reply:
        """An HTTP error with an OpenAI- or Anthropic-shaped body, chosen from the path."""
        return cls(status=status, headers=headers, error_detail=ErrorDetail(message, type, code))

    @classmethod
    def empty(cls, finish: str = "stop", usage: Usage | None = _NO_USAGE) -> Reply:
        """A stream without content: only the finish (and usage)."""
        return cls(_tail(finish, usage, True))


@dataclass(frozen=True)
class RecordedRequest:
    """One received request; ``headers`` keys are lower-case, ``body`` is parsed JSON."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: Any
    raw_body: bytes
    received_at: float
    connection_id: int
    index: int


@dataclass
class ConnectionRecord:
    """One TCP connection; callers always get copies, the server mutates its own."""

    id: int
    opened_at: float
    closed_at: float | None = None
    closed_by: Literal["client", "server"] | None = None
    requests: int = 0


def _usage_json(u: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }
    if u.cache_read_input_tokens is not None:
        out["cache_read_input_tokens"] = u.cache_read_input_tokens
    return out


def _last_usage(steps: tuple[Step, ...]) -> Usage | None:
    found: Usage | None = None
    for s in steps:
        if isinstance(s, Usage) or (isinstance(s, Finish) and s.usage is not None):
            found = s if isinstance(s, Usage) else s.usage
    return found


def _tool_json(t: ToolDelta) -> dict[str, Any]:
    out: dict[str, Any] = {} if t.index is None else {"index": t.index}
    if t.id is not None:
        out |= {"id": t.id, "type": "function"}
    fn = {k: v for k, v in (("name", t.name), ("arguments", t.arguments)) if v is not None}
    return out | {"function": fn} if fn else out


def _error_json(api: Api | None, e: ErrorDetail) -> bytes:
    if api == "anthropic":
        body: dict[str, Any] = {"type": "error", "error": {"type": e.type, "message": e.message}}
        return msgspec.json.encode(body)
    return msgspec.json.encode({"error": {"message": e.message, "type": e.type, "code": e.code}})


class _OpenAI:
    """Renders steps as ``chat.completion.chunk`` SSE events or one ``chat.completion``."""

    def __init__(self, n: int, model: str) -> None:
        self.base = {"id": f"chatcmpl-fake-{n}", "created": int(time.time()), "model": model}
        self.role_sent = False

    def _sse(self, choices: list[Any], **extra: Any) -> list[bytes]:
        chunk = {**self.base, "object": "chat.completion.chunk", "choices": choices, **extra}
        return [b"data: " + msgspec.json.encode(chunk) + b"\n\n"]

    def events(self, step: Step) -> list[bytes]:
        if isinstance(step, Done):
            return [b"data: [DONE]\n\n"]
        if isinstance(step, Usage):
            return self._sse([], usage=_usage_json(step))
        if isinstance(step, Finish):
            extra = {} if step.usage is None else {"usage": _usage_json(step.usage)}
            return self._sse([{"index": 0, "delta": {}, "finish_reason": step.reason}], **extra)
        if isinstance(step, Text):
            delta: dict[str, Any] = {"content": step.text}
        elif isinstance(step, Reasoning):
            delta = {"reasoning_content": step.text}
        elif isinstance(step, ToolDelta):
            delta = {"tool_calls": [_tool_json(step)]}
        else:
            return []
        if not self.role_sent:
            delta, self.role_sent = {"role": "assistant", **delta}, True
        return self._sse([{"index": 0, "delta": delta, "finish_reason": None}])

    def end(self) -> list[bytes]:
        return self.events(Done())

    def message(self, steps: tuple[Step, ...]) -> dict[str, Any]:
        """Assemble the non-streamed object; tool fragments merge as a client would."""
        texts = [s.text for s in steps if isinstance(s, Text)]
        thoughts = [s.text for s in steps if isinstance(s, Reasoning)]
        calls: list[dict[str, Any]] = []
        by_id: dict[str, dict[str, Any]] = {}
        by_index: dict[int | None, dict[str, Any]] = {}
        for s in steps:
            if not isinstance(s, ToolDelta):
                continue
            if s.id is not None and s.id in by_id:
                call = by_id[s.id]
            elif s.id is not None or not calls:
                call = {
                    "id": s.id or f"call_fake_{len(calls)}",
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
                calls.append(call)
                by_id[call["id"]] = call
            else:
                call = by_index.get(s.index, calls[-1])
            by_index[s.index] = call
            call["function"]["name"] = s.name or call["function"]["name"]
            call["function"]["arguments"] += s.arguments or ""
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if thoughts:
            msg["reasoning_content"] = "".join(thoughts)
        if calls:
            msg["tool_calls"] = calls
        reason = next((s.reason for s in reversed(steps) if isinstance(s, Finish)), "stop")
        out = {
            **self.base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": msg, "finish_reason": reason}],
        }
        usage = _last_usage(steps)
        return out if usage is None else out | {"usage": _usage_json(usage)}


class _Anthropic:
    """Renders steps as Anthropic messages SSE events, or folds them into one ``message``."""

    def __init__(self, n: int, model: str, steps: tuple[Step, ...]) -> None:
        self.n, self.model, self.usage = n, model, _last_usage(steps)  # pre-scanned
        self.started, self.block, self.index = False, "", -1

    def _output_tokens(self) -> int:
        return self.usage.completion_tokens if self.usage else 0

    def _usage(self, output: int) -> dict[str, Any]:
        u = self.usage
        out = {"input_tokens": u.prompt_tokens if u else 0, "output_tokens": output}
        cache = u and (
            u.cache_read_input_tokens
            if u.cache_read_input_tokens is not None
            else u.cached_tokens or None
        )
        return out if cache is None else out | {"cache_read_input_tokens": cache}

    def _close(self) -> list[dict[str, Any]]:
        ev = [{"type": "content_block_stop", "index": self.index}] if self.block else []
        self.block = ""
        return ev

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        ev = self._close()
        self.index, self.block = self.index + 1, kind
        return [*ev, {"type": "content_block_start", "index": self.index, "content_block": block}]

    def dicts(self, step: Step) -> list[dict[str, Any]]:
        ev: list[dict[str, Any]] = []
        if not self.started:
            self.started = True
            ev.append(
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_fake_{self.n}",
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": self._usage(0),
                    },
                }
            )
        delta: dict[str, Any] | None = None
        if isinstance(step, Text):
            if self.block != "text":
                ev += self._open("text", {"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": step.text}
        elif isinstance(step, Reasoning):
            if self.block != "thinking":
                ev += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            delta = {"type": "thinking_delta", "thinking": step.text}
        elif isinstance(step, ToolDelta):
            if step.id is not None or self.block != "tool_use":
                ev += self._open(
                    "tool_use",
                    {
                        "type": "tool_use",
                        "input": {},
                        "id": step.id or f"toolu_fake_{self.index + 1}",
                        "name": step.name or "",
                    },
                )
            if step.arguments:
                delta = {"type": "input_json_delta", "partial_json": step.arguments}
        elif isinstance(step, Finish):
            stop = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
            ev += [
                *self._close(),
                {
                    "type": "message_delta",
                    "usage": {"output_tokens": self._output_tokens()},
                    "delta": {
                        "stop_reason": stop.get(step.reason, step.reason),
                        "stop_sequence": None,
                    },
                },
            ]
        elif isinstance(step, Done):
            ev += [*self._close(), {"type": "message_stop"}]
        if delta is not None:
            ev.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return ev

    def events(self, step: Step) -> list[bytes]:
        return [
            b"event: " + d["type"].encode() + b"\ndata: " + msgspec.json.encode(d) + b"\n\n"
            for d in self.dicts(step)
        ]

    def end(self) -> list[bytes]:
        return self.events(Done())

    def message(self, steps: tuple[Step, ...]) -> dict[str, Any]:
        """Fold the stream events into the non-streamed ``message`` object."""
        msg: dict[str, Any] = {}
        partial: dict[int, str] = {}
        for ev in [e for s in (*steps, Done()) for e in self.dicts(s)]:
            if ev["type"] == "message_start":
                msg = ev["message"]
            elif ev["type"] == "content_block_start":
                msg["content"].append(ev["content_block"])
            elif ev["type"] == "content_block_delta":
                block, d = msg["content"][ev["index"]], ev["delta"]
                if d["type"] == "input_json_delta":
                    partial[ev["index"]] = partial.get(ev["index"], "") + d["partial_json"]
                else:
                    key = "text" if d["type"] == "text_delta" else "thinking"
                    block[key] += d[key]
            elif ev["type"] == "message_delta":
                msg["stop_reason"] = ev["delta"]["stop_reason"]
        for i, text in partial.items():
            with contextlib.suppress(msgspec.DecodeError):
                msg["content"][i]["input"] = msgspec.json.decode(text)
        msg["stop_reason"] = msg["stop_reason"] or "end_turn"
        msg["usage"] = self._usage(self._output_tokens())
        return msg


def _api(method: str, path: str) -> Api | None:
    route = path.split("?", 1)[0].rstrip("/")
    if method != "POST":
        return None
    if route.endswith("/chat/completions"):
        return "openai"
    return "anthropic" if route.endswith("/messages") else None


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # e.g. Anthropic's 529
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


class _Conn:
    """Per-connection state. A pump task reads continuously into ``buf``, so a client's
    close is noticed at once, even mid-stream or during a stall, not at the next write."""

    def __init__(
        self, record: ConnectionRecord, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.record, self.reader, self.writer = record, reader, writer
        self.buf, self.eof = bytearray(), False
        self.data, self.closed = asyncio.Event(), asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    async def more(self) -> bool:
        """Wait for more bytes; False once the client has closed."""
        if self.eof:
            return False
        self.data.clear()
        await self.data.wait()
        return True

    async def wait_eof(self, seconds: float | None) -> bool:
        """Sleep up to ``seconds`` (None: forever) or until EOF; True if the client closed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.closed.wait()
        return self.eof

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class FakeProvider:
    """Scripted fake OpenAI/Anthropic server on its own thread; see the module docstring."""

    def __init__(self, *, default: Reply | None = None, host: str = "127.0.0.1") -> None:
        self.default, self.host = default, host
        self._cond = threading.Condition()  # guards everything the caller's threads touch
        self._script: deque[Reply] = deque()
        self._responder: Callable[[RecordedRequest], Reply] | None = None
        self._requests: list[RecordedRequest] = []
        self._conns: list[ConnectionRecord] = []
        self._conn_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._live: set[_Conn] = set()  # server thread only
        self._port = 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeProvider:
        """Bind a free port and serve on a new daemon thread; returns self."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run, args=(loop,), name="FakeProvider", daemon=True)
        thread.start()
        try:
            self._server = asyncio.run_coroutine_threadsafe(
                asyncio.start_server(self._handle, self.host, 0), loop
            ).result(timeout=10)
        except BaseException:
            loop.call_soon_threadsafe(loop.stop)
            thread.join()
            raise
        self._port = self._server.sockets[0].getsockname()[1]
        self._loop, self._thread = loop, thread
        return self

    def stop(self) -> None:
        """Close the server, abort open connections, join the thread. Idempotent."""
        with self._cond:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _shutdown(self) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.sleep(0)  # let just-accepted connections register in _live
        tasks = [t for conn in self._live for t in conn.tasks]
        for conn in list(self._live):
            self._mark_closed(conn, "server")
            conn.writer.transport.abort()
        # The abort wakes every handler (its pump sees EOF), so they end by themselves;
        # cancelling a stream handler task instead makes asyncio log a spurious error.
        _, late = await asyncio.wait(tasks, timeout=2) if tasks else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        await self._server.wait_closed()

    def __enter__(self) -> FakeProvider:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> FakeProvider:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    @property
    def root_url(self) -> str:
        if not self._port:
            raise RuntimeError("FakeProvider is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    # -- scripting and records (any thread) ------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue replies; each incoming API request takes the next one."""
        with self._cond:
            self._script.extend(replies)

    def respond_with(self, fn: Callable[[RecordedRequest], Reply] | None) -> None:
        """Answer with ``fn(request)`` when the script is empty (runs on the server thread)."""
        with self._cond:
            self._responder = fn

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def connections(self) -> list[ConnectionRecord]:
        with self._cond:
            return [replace(c) for c in self._conns]

    def reset(self) -> None:
        """Forget script, responder and records (connection ids keep increasing)."""
        with self._cond:
            self._script.clear()
            self._responder = None
            self._requests.clear()
            self._conns.clear()

    # The waits block a worker thread on the Condition, which asyncio.timeout could not
    # interrupt; hence the explicit ``timeout`` parameters (ASYNC109).
    async def wait_requests(self, n: int, timeout: float = 1.0) -> list[RecordedRequest]:  # noqa: ASYNC109
        """Wait (from any loop) until at least ``n`` requests arrived; TimeoutError if not."""
        return await asyncio.to_thread(
            self._wait,
            lambda: list(self._requests) if len(self._requests) >= n else None,
            timeout,
            f"fewer than {n} requests",
        )

    async def wait_closed(self, timeout: float = 1.0) -> ConnectionRecord:  # noqa: ASYNC109
        """Wait until every connection that carried a request is closed; returns the last."""

        def check() -> ConnectionRecord | None:
            used = [c for c in self._conns if c.requests]
            done = used and all(c.closed_at is not None for c in used)
            return replace(used[-1]) if done else None

        return await asyncio.to_thread(self._wait, check, timeout, "connections still open")

    def _wait(self, check: Callable[[], _T | None], timeout: float, what: str) -> _T:
        with self._cond:
            result = self._cond.wait_for(check, timeout)
        if result is None:
            raise TimeoutError(f"fake provider: {what} after {timeout}s")
        return result

    def _mark_closed(self, conn: _Conn, by: Literal["client", "server"]) -> None:
        with self._cond:
            if conn.record.closed_at is None:
                conn.record.closed_at, conn.record.closed_by = time.monotonic(), by
                self._cond.notify_all()

    # -- serving (server thread) -----------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with self._cond:
            self._conn_seq += 1
            record = ConnectionRecord(self._conn_seq, time.monotonic())
            self._conns.append(record)
        conn = _Conn(record, reader, writer)
        me = asyncio.current_task()
        assert me is not None
        conn.tasks = [me, asyncio.create_task(self._pump(conn))]
        self._live.add(conn)
        try:
            while await self._serve_one(conn):
                pass
        except OSError:  # includes ConnectionError: the client went away mid-write
            self._mark_closed(conn, "client")
        finally:
            self._mark_closed(conn, "server")  # no-op if already recorded
            conn.tasks[1].cancel()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._live.discard(conn)

    async def _pump(self, conn: _Conn) -> None:
        with contextlib.suppress(OSError):
            while data := await conn.reader.read(65536):
                conn.buf += data
                conn.data.set()
        conn.eof = True
        self._mark_closed(conn, "client")  # no-op if the server closed first
        conn.data.set()
        conn.closed.set()

    async def _read_request(self, conn: _Conn) -> tuple[RecordedRequest, bool] | None:
        """Parse one request; None on EOF or garbage (the connection then closes).

        Bodies are read by Content-Length only: the SDKs LiteLLM uses never send chunked
        request bodies, and supporting them would only add code to a test fake."""
        while (end := conn.buf.find(b"\r\n\r\n")) < 0:
            if not await conn.more():
                return None
        head = conn.buf[:end].decode("latin-1").split("\r\n")
        del conn.buf[: end + 4]
        try:
            method, path, version = head[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in head[1:])
            }
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return None
        while len(conn.buf) < length:
            if not await conn.more():
                return None
        raw = bytes(conn.buf[:length])
        del conn.buf[:length]
        try:
            body = msgspec.json.decode(raw) if raw else None
        except msgspec.DecodeError:
            body = None
        with self._cond:
            req = RecordedRequest(
                method,
                path,
                headers,
                body,
                raw,
                time.monotonic(),
                conn.record.id,
                len(self._requests),
            )
            self._requests.append(req)
            conn.record.requests += 1
            self._cond.notify_all()
        return req, version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"

    def _pick(self, req: RecordedRequest, api: Api | None) -> Reply:
        if api is None:
            return Reply.error(
                404, f"fake provider: unknown path {req.method} {req.path}", type="not_found_error"
            )
        with self._cond:
            if self._script:
                return self._script.popleft()
            responder, default = self._responder, self.default
        if responder is not None:
            try:
                return responder(req)
            except Exception as exc:  # surface responder bugs to the client, not a hang
                return Reply.error(500, f"fake provider: responder raised {exc!r}")
        if default is not None:
            return default
        return Reply.error(500, f"fake provider: no scripted reply for request {req.index}")

    async def _serve_one(self, conn: _Conn) -> bool:
        """Answer one request; returns whether the connection stays open."""
        parsed = await self._read_request(conn)
        if parsed is None:
            return False
        req, keep = parsed
        api = _api(req.method, req.path)
        reply = self._pick(req, api)
        extra = {k.lower(): v for k, v in reply.headers.items()}
        keep = keep and extra.get("connection", "").lower() != "close"
        if reply.delay and await conn.wait_eof(reply.delay):
            return False
        body = req.body if isinstance(req.body, dict) else {}
        model = str(body.get("model", "fake-model"))
        enc = (
            _Anthropic(req.index, model, reply.steps)
            if api == "anthropic"
            else _OpenAI(req.index, model)
        )
        streamed = body.get("stream") is True and reply.body is None and not reply.error_detail
        headers = {"content-type": "text/event-stream" if streamed else "application/json"}
        headers |= {"cache-control": "no-cache", "transfer-encoding": "chunked"} if streamed else {}
        headers |= extra | ({} if keep else {"connection": "close"})
        if not streamed:
            for step in reply.steps:  # only the timing/fault steps apply
                if isinstance(step, Stall) and await conn.wait_eof(step.seconds):
                    return False
                if isinstance(step, Drop):
                    return self._drop(conn)
            data = (
                reply.body
                if reply.body is not None
                else (
                    _error_json(api, reply.error_detail)
                    if reply.error_detail
                    else msgspec.json.encode(enc.message(reply.steps))
                )
            )
            return await self._finish(
                conn, keep, _head(reply.status, headers | {"content-length": str(len(data))}) + data
            )
        await conn.write(_head(reply.status, headers))
        steps = reply.steps
        auto_end = not any(isinstance(s, Done | Drop) for s in steps) and (
            not steps or steps[-1] != Stall(None)
        )
        todo: tuple[Step | None, ...] = (*steps, None) if auto_end else steps
        for item in todo:
            if conn.eof:
                return False
            if isinstance(item, Stall):
                if await conn.wait_eof(item.seconds):
                    return False
            elif isinstance(item, Drop):
                return self._drop(conn)
            else:  # None: the automatic end of stream
                chunks = (
                    enc.end()
                    if item is None
                    else ([item.data] if isinstance(item, Raw) else enc.events(item))
                )
                for chunk in filter(None, chunks):  # an empty chunk would end the body
                    await conn.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        return await self._finish(conn, keep, b"0\r\n\r\n")

    async def _finish(self, conn: _Conn, keep: bool, data: bytes) -> bool:
        if not keep:  # record before the client can react to the final bytes
            self._mark_closed(conn, "server")
        await conn.write(data)
        return keep

    def _drop(self, conn: _Conn) -> bool:
        self._mark_closed(conn, "server")
        conn.writer.transport.abort()
        return False


if __name__ == "__main__":  # manual demo: curl $URL/chat/completions -d '{"stream": true}'
    with FakeProvider(default=Reply.text("Hello", " from", " the fake.")) as _fake:
        print(f"fake provider at {_fake.base_url}; Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
