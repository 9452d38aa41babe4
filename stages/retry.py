"""retry: the segment that runs the call itself, and will run it again.

consumes: ``Request`` (each one starts a run of the inner stages)
emits: what the inner stages emit
passes through: every other event
buffers: nothing

The inner stages (by default dispatch -> reassemble -> usage -> empty_check)
are chained through ``ctx.run``, so they are instrumented like top-level
stages, and found by name by ``Pipeline.replace`` and friends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from pipeline.events import Event, Request
from pipeline.stage import Context, Segment, Stage, closing

__all__ = ["Retry", "retry"]


@dataclass(frozen=True, slots=True)
class Retry:
    """A segment: its inner stages run once per attempt."""

    stages: tuple[Stage, ...]
    name: str = "retry"

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment:
        return replace(self, stages=stages)

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream, ctx)

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                async with closing(ctx.run(self.stages, _once(ev))) as attempt:
                    async for out in attempt:
                        yield out


def retry(*stages: Stage) -> Retry:
    return Retry(tuple(stages))


async def _once(req: Request) -> AsyncIterator[Event]:
    yield req
