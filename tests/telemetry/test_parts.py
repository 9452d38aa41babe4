"""Any segment's labelled runs get spans of their own, not only retry's attempts.

A segment that tries its inner stages against one target, then another (as a
fallback does), runs each through ``ctx.run(..., group=(label, attributes))`` and
tells the instrument what it did after a failed one (``group_failed``): each run is a
span named by its label, under the segment, with the segment's stages under
it; the failed one is ERROR and says what followed, the one that answered is
OK. A part with no stages of its own is a span too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, replace

from opentelemetry.trace import StatusCode

from pipeline.context import Context
from pipeline.errors import RateLimited
from pipeline.events import Event, Retrying
from pipeline.request import Request
from pipeline.runner import once
from pipeline.stage import Segment, Stage
from tests.telemetry.conftest import Spans, assert_each_span_ended_once
from tests.telemetry.test_spans import REQ, ok_script


@dataclass(frozen=True, slots=True)
class Either:
    """Its stages against ``labels[0]``; on a 429, against the next label."""

    stages: tuple[Stage, ...]
    labels: tuple[str, ...] = ("target a", "target b")
    name: str = "either"

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment:
        return replace(self, stages=stages)

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream, ctx)

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with aclosing(upstream) as events:
            [req] = [ev async for ev in events if isinstance(ev, Request)]
        for n, label in enumerate(self.labels):
            try:
                async with aclosing(
                    ctx.run(self.stages, once(req), group=(label, {"target": n}))
                ) as inner:
                    async for ev in inner:
                        yield ev
                return
            except RateLimited as exc:
                if n == len(self.labels) - 1:
                    raise
                then = Retrying(attempt=n + 1, delay_s=0.0, reason="rate_limited")
                ctx.instrument.group_failed(ctx, exc, then)
                yield then


async def test_a_segments_labelled_runs_are_spans_under_it(spans: Spans) -> None:
    base = spans.pipeline([[RateLimited("slow down")], ok_script()])
    either = Either(stages=base["retry"].stages)  # type: ignore[attr-defined]
    p = base.replace("retry", either)
    assert (await p.acomplete(REQ)).text == "Paris"
    seg, a, b = spans.one("either"), spans.one("target a"), spans.one("target b")
    assert {a.parent.span_id, b.parent.span_id} == {seg.context.span_id}  # type: ignore[union-attr]
    assert (a.start_time or 0) < (b.start_time or 0)
    assert a.status.status_code is StatusCode.ERROR
    assert (a.attributes or {})["error.type"] == "pipeline.errors.RateLimited"
    assert (a.attributes or {})["llmpipe.then.reason"] == "rate_limited"
    assert b.status.status_code is StatusCode.OK
    assert [(s.attributes or {})["target"] for s in (a, b)] == [0, 1]  # the group's attributes
    for part in (a, b):  # each with the segment's stages under it, in pipeline order
        under = [s for s in spans.finished if s.parent and s.parent.span_id == part.context.span_id]
        under.sort(key=lambda s: s.start_time or 0)
        assert [s.name for s in under] == ["dispatch", "reassemble", "usage", "empty_check"]
    assert spans.root().status.status_code is StatusCode.OK
    assert_each_span_ended_once(spans.finished)


async def test_a_part_without_stages_of_its_own_is_a_span_too(spans: Spans) -> None:
    """A segment with no stages: its one part passes the request on, and is a span that
    ends OK."""
    p = spans.pipeline([ok_script()]).insert_after("cache_tag", Either(stages=(), labels=("only",)))
    assert (await p.acomplete(REQ)).text == "Paris"
    part = spans.one("only")
    assert part.parent.span_id == spans.one("either").context.span_id  # type: ignore[union-attr]
    assert part.status.status_code is StatusCode.OK
    assert_each_span_ended_once(spans.finished)
