"""The runner: the one place where stages are chained, closed and wrapped.

``run_stages`` chains stages onto an upstream through the context's
instrument (``Instrument.stage``), so telemetry can wrap every stage run
without any stage knowing; a segment that stands aside for the call
(``Segment.stands_aside``) is replaced by its inner stages there. ``once``
is the upstream a run or a segment's attempt starts from; ``closing`` is
how every stage holds its upstream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from pipeline.events import Event
from pipeline.secrets import hold, scrub

if TYPE_CHECKING:
    from pipeline.context import Context
    from pipeline.stage import Stage

__all__ = ["closing", "once", "run_stages"]


class closing:
    """``async with closing(upstream) as events``: close ``upstream`` on leaving.

    Like ``contextlib.aclosing``, but for any async iterator: one without
    ``aclose`` (a plain iterator class, an aiostream stream) is left as is.
    """

    __slots__ = ("events",)

    def __init__(self, events: AsyncIterator[Event]) -> None:
        self.events = events

    async def __aenter__(self) -> AsyncIterator[Event]:
        return self.events

    async def __aexit__(self, *exc_info: object) -> None:
        close = getattr(self.events, "aclose", None)
        if close is not None:
            await close()


def run_stages(
    stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
) -> AsyncIterator[Event]:
    """The one place where stages are chained, and so the one place they are wrapped.

    The chain closes by construction: when it ends, fails or is closed, every
    stage's generator is closed, outermost first, even one whose stage forgot
    to close its own upstream. An exception leaves it scrubbed of secrets
    (``pipeline.secrets.scrub``), whichever stage raised it.
    """
    chain = [upstream]
    start = ctx.instrument.stage
    for st in _standing(stages, ctx):
        chain.append(start(st, chain[-1], ctx))
    return _closing(chain, ctx.request.api_key)


def _standing(stages: tuple[Stage, ...], ctx: Context) -> list[Stage]:
    """``stages`` with every segment that stands aside for this call replaced by its
    inner stages (themselves expanded): see ``pipeline.stage.Segment``."""
    out: list[Stage] = []
    for st in stages:
        aside = getattr(st, "stands_aside", None)
        if aside is not None and aside(ctx):
            out.extend(_standing(st.stages, ctx))  # type: ignore[attr-defined]
        else:
            out.append(st)
    return out


async def once(event: Event) -> AsyncIterator[Event]:
    """An upstream of one event: how runs and segment attempts start."""
    yield event


async def _closing(chain: list[AsyncIterator[Event]], secret: str | None) -> AsyncIterator[Event]:
    """Runs the chain; what leaves it, events or an exception, is safe to show.

    While it runs, the request's key is masked in every guarded logger
    (``secrets.hold``); an exception leaving it is scrubbed, chain and all.
    """
    try:
        with hold(secret):
            async for ev in chain[-1]:
                yield ev
    except Exception as exc:
        scrub(exc, secret)
        raise
    finally:
        for events in reversed(chain):
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
