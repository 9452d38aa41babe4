"""Small helpers for tests: a context, a scripted upstream, a drain, a closed port."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pipeline.context import Context
from pipeline.events import Event
from pipeline.profiles import resolve
from pipeline.request import Request
from pipeline.stage import Stage


def make_request(**overrides: Any) -> Request:
    fields: dict[str, Any] = {
        "model": "openai/test-model",
        "messages": [{"role": "user", "content": "hi"}],
    }
    fields.update(overrides)
    return Request(**fields)


def make_ctx(request: Request | None = None, **overrides: Any) -> Context:
    req = request or make_request()
    ctx = Context(request=req, profile=resolve(req.model, req.api_base))
    for key, value in overrides.items():
        setattr(ctx, key, value)
    return ctx


class Source:
    """An upstream that yields scripted events and records whether it was closed."""

    def __init__(self, events: Iterable[Event]) -> None:
        self.events = list(events)
        self.closed = False
        self.pulled = 0

    def __call__(self) -> AsyncIterator[Event]:
        return self._gen()

    async def _gen(self) -> AsyncIterator[Event]:
        try:
            for ev in self.events:
                self.pulled += 1
                yield ev
        finally:
            self.closed = True


async def run_stage(st: Stage, events: Iterable[Event], ctx: Context | None = None) -> list[Event]:
    ctx = ctx or make_ctx()
    out = []
    async for ev in st(Source(events)(), ctx):
        out.append(ev)
    return out


def closed_port() -> int:
    """A loopback port nothing listens on (bound once, then released): connection refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
