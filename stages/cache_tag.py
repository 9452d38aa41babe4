"""cache_tag: mark the system prompt cacheable where the provider takes the mark.

consumes: ``Request``
emits: the ``Request`` with ``cache_control: {"type": "ephemeral"}`` on its
    system messages, when ``ctx.profile.cache_control`` says the provider
    accepts it (Anthropic natively; MiniMax and Z.ai/GLM pass it on); unchanged
    otherwise
passes through: every other event
buffers: nothing
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pipeline.context import Context
from pipeline.events import Event, Request
from pipeline.request import derived
from pipeline.runner import closing
from pipeline.stage import Stage, stage

__all__ = ["EPHEMERAL", "cache_tag", "tag_system"]

EPHEMERAL: dict[str, Any] = {"type": "ephemeral"}


def cache_tag() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        enabled = ctx.profile.cache_control
        async with closing(upstream) as events:
            async for ev in events:
                yield tag_system(ev) if enabled and isinstance(ev, Request) else ev

    return stage("cache_tag", run, contained=True)


def tag_system(req: Request) -> Request:
    """The request with its system messages marked ephemeral-cacheable."""
    if not any(m["role"] == "system" for m in req.messages):
        return req
    messages = [
        {**m, "cache_control": dict(EPHEMERAL)} if m["role"] == "system" else m
        for m in req.messages
    ]
    return derived(req, messages=messages)
