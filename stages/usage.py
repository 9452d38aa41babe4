"""usage: make ``Finish`` carry the call's token usage and cost, and say where they came from.

consumes: ``Chunk`` events that carry usage (whether they came before or
    after the finish chunk), ``Finish``
emits: ``Finish`` with ``input_tokens``, ``output_tokens``, ``cached_tokens``
    and ``usage_source``: ``provider`` when the provider reported usage,
    ``estimated`` when it did not (then the request is counted with
    ``ctx.count_tokens`` and the answer as characters / 4); and
    ``cost_usd``, priced by LiteLLM's table (``pipeline.cost``) for the model
    the request was sent to, else the one the provider said answered
    (``None`` when neither has a known price). The usage is counted in the
    pipeline's usage meter (``ctx.meter``), when it has limits.
passes through: every other event
buffers: nothing (it remembers the latest usage it saw)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import msgspec

from pipeline.context import Context
from pipeline.cost import cost_usd, prices_async
from pipeline.events import Chunk, Event, Finish, TextDelta, ToolCall
from pipeline.runner import closing
from pipeline.stage import Stage, stage

__all__ = ["parse_usage", "usage"]


def usage() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        reported: tuple[int, int, int] | None = None
        estimated = False
        output_chars = 0
        async with closing(upstream) as events:
            async for ev in events:
                kind = type(ev)
                if kind is TextDelta:
                    output_chars += len(ev.text)  # type: ignore[union-attr]
                elif kind is ToolCall:
                    assert isinstance(ev, ToolCall)
                    output_chars += len(ev.name) + len(msgspec.json.encode(ev.arguments))
                elif kind is Chunk and ev.usage is not None:  # type: ignore[union-attr]
                    assert isinstance(ev, Chunk)
                    counts = parse_usage(ev.usage)
                    if counts != (0, 0, 0):
                        reported, estimated = counts, ev.usage_estimated
                    continue  # usage chunks end here
                elif kind is Finish:
                    assert isinstance(ev, Finish)
                    if reported is not None:
                        source = "estimated" if estimated else "provider"
                        inp, out, cached = reported
                    else:
                        source = "estimated"
                        inp, _method = await ctx.count_tokens(ctx.request)
                        cached, out = 0, (output_chars + 3) // 4
                    models = (ctx.request.model, ev.model)
                    cost = cost_usd(models, inp, out, cached, table=await prices_async())
                    ev = msgspec.structs.replace(
                        ev,
                        input_tokens=inp,
                        output_tokens=out,
                        cached_tokens=cached,
                        usage_source=source,
                        cost_usd=cost,
                    )
                    if ctx.meter is not None:
                        ctx.meter.record(inp, out, cost, ctx.request.model)
                yield ev

    return stage("usage", run, contained=True)


def parse_usage(u: Mapping[str, Any]) -> tuple[int, int, int]:
    """``(input, output, cached)`` from an OpenAI- or Anthropic-shaped usage mapping."""
    inp = _int(u.get("prompt_tokens", u.get("input_tokens")))
    out = _int(u.get("completion_tokens", u.get("output_tokens")))
    details = u.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    if not cached:
        cached = _int(u.get("cache_read_input_tokens"))
    return inp, out, cached


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
