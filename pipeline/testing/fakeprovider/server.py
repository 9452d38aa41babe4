"""The loopback server: scripted replies, faults and records, over ``http``'s framing."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Literal, TypeVar

import msgspec

from pipeline.testing.fakeprovider.formats import api_of
from pipeline.testing.fakeprovider.http import (
    Connection,
    read_request,
)
from pipeline.testing.fakeprovider.play import play
from pipeline.testing.fakeprovider.script import (
    Api,
    ConnectionRecord,
    RecordedRequest,
    Reply,
)

_T = TypeVar("_T")


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
        self._live: set[Connection] = set()  # server thread only
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

    def _mark_closed(self, conn: Connection, by: Literal["client", "server"]) -> None:
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
        conn = Connection(record, reader, writer)
        me = asyncio.current_task()
        assert me is not None
        conn.tasks = [me, asyncio.create_task(conn.pump(lambda: self._mark_closed(conn, "client")))]
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

    async def _read_request(self, conn: Connection) -> tuple[RecordedRequest, bool] | None:
        """Read and record one request; ``None`` on EOF or garbage."""
        raw = await read_request(conn)
        if raw is None:
            return None
        try:
            body = msgspec.json.decode(raw.body) if raw.body else None
        except msgspec.DecodeError:
            body = None
        with self._cond:
            req = RecordedRequest(
                raw.method,
                raw.path,
                raw.headers,
                body,
                raw.body,
                time.monotonic(),
                conn.record.id,
                len(self._requests),
            )
            self._requests.append(req)
            conn.record.requests += 1
            self._cond.notify_all()
        return req, raw.keep_alive

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

    async def _serve_one(self, conn: Connection) -> bool:
        """Answer one request; returns whether the connection stays open."""
        parsed = await self._read_request(conn)
        if parsed is None:
            return False
        req, keep = parsed
        api = api_of(req.method, req.path)
        reply = self._pick(req, api)
        return await play(reply, req, api, conn, keep, lambda: self._mark_closed(conn, "server"))


if __name__ == "__main__":  # manual demo: curl $URL/chat/completions -d '{"stream": true}'
    with FakeProvider(default=Reply.text("Hello", " from", " the fake.")) as _fake:
        print(f"fake provider at {_fake.base_url}; Ctrl-C to stop")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
