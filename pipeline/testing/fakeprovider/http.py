"""HTTP/1.1 framing for the fake provider: a connection read continuously, requests, chunks.

Hand-written on purpose: the server must be able to send exactly the bytes a
script asks for, broken framing included (``Wire``), which no HTTP server
library would let it do. Request bodies are read by ``Content-Length`` only:
the SDKs LiteLLM uses never send chunked request bodies, and supporting them
would only add code to a test fake.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pipeline.testing.fakeprovider.script import ConnectionRecord

__all__ = ["LAST_CHUNK", "Connection", "RawRequest", "chunk", "head", "read_request"]

#: the zero-length chunk that ends a chunked body
LAST_CHUNK = b"0\r\n\r\n"


def head(status: int, headers: Mapping[str, str]) -> bytes:
    """A response's status line and headers."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:  # e.g. Anthropic's 529
        phrase = "Unknown"
    lines = [f"HTTP/1.1 {status} {phrase}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked body (never empty: that would end the body)."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Connection:
    """One client connection. ``pump`` reads continuously into ``buf``, so a client's
    close is noticed at once, even mid-stream or during a stall, not at the next write."""

    def __init__(
        self, record: ConnectionRecord, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.record, self.reader, self.writer = record, reader, writer
        self.buf, self.eof = bytearray(), False
        self.data, self.closed = asyncio.Event(), asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    async def pump(self, on_eof: Callable[[], None]) -> None:
        """Read until the client closes; then ``on_eof()``."""
        with contextlib.suppress(OSError):
            while data := await self.reader.read(65536):
                self.buf += data
                self.data.set()
        self.eof = True
        on_eof()
        self.data.set()
        self.closed.set()

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

    def abort(self) -> None:
        """Drop the connection without a goodbye (a reset)."""
        self.writer.transport.abort()


@dataclass(frozen=True, slots=True)
class RawRequest:
    """One request as it came: its line, headers (lower-case names) and body bytes."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


async def read_request(conn: Connection) -> RawRequest | None:
    """The next request on ``conn``; ``None`` on EOF or garbage (the connection then closes)."""
    while (end := conn.buf.find(b"\r\n\r\n")) < 0:
        if not await conn.more():
            return None
    lines = conn.buf[:end].decode("latin-1").split("\r\n")
    del conn.buf[: end + 4]
    try:
        method, path, version = lines[0].split(" ", 2)
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
        }
        length = int(headers.get("content-length", "0"))
    except ValueError:
        return None
    while len(conn.buf) < length:
        if not await conn.more():
            return None
    body = bytes(conn.buf[:length])
    del conn.buf[:length]
    keep = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    return RawRequest(method, path, headers, body, keep)
