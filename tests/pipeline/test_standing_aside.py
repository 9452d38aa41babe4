"""``Segment.stands_aside``: a segment with nothing to do for a call is not run in it.

``run_stages`` asks each segment once per call; one that stands aside is
replaced by its inner stages (themselves asked in turn), so the call has
one run fewer and the same events. The pipeline's shape does not change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from pipeline import Pipeline, testing
from pipeline.context import Context
from pipeline.events import Event, Request, TextDelta
from pipeline.runner import closing, once
from pipeline.stage import Segment, Stage

REQ = {"model": "openai/m", "messages": [{"role": "user", "content": "hi"}]}


@dataclass(frozen=True)
class Marking:
    """A segment that marks every text delta, unless the request's ``system`` is ``plain``."""

    stages: tuple[Stage, ...]
    name: str
    runs: list[str]

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment:
        return replace(self, stages=stages)

    def stands_aside(self, ctx: Context) -> bool:
        return ctx.request.system == "plain"

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        self.runs.append(self.name)
        return self._run(upstream, ctx)

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                async with closing(ctx.run(self.stages, once(ev))) as inner:
                    async for out in inner:
                        if isinstance(out, TextDelta):
                            out = TextDelta(text=f"[{self.name}]{out.text}")
                        yield out


def pipeline(runs: list[str]) -> Pipeline:
    base = Pipeline.default().replace(
        "dispatch", testing.scripted([testing.text_chunks("a", "b")] * 4)
    )
    inner = Marking(stages=(base["retry"],), name="inner", runs=runs)
    return base.replace("retry", Marking(stages=(inner,), name="outer", runs=runs))


async def test_a_segment_that_stands_aside_is_not_run_and_its_stages_run_in_its_place() -> None:
    runs: list[str] = []
    p = pipeline(runs)
    shape = repr(p)
    # the same pipeline, call after call: each call decides for itself
    assert (await p.acomplete({**REQ, "system": "plain"})).text == "ab"
    assert runs == []
    assert (await p.acomplete(REQ)).text == "[outer][inner]a[outer][inner]b"  # both ran
    assert runs == ["outer", "inner"]
    assert (await p.acomplete({**REQ, "system": "plain"})).text == "ab"
    assert runs == ["outer", "inner"]
    assert repr(p) == shape  # standing aside is per call: the pipeline is as it was


def test_the_default_pipelines_segments_say_when_they_stand_aside() -> None:
    """fallback: without a target besides the request; tool_compat: without tools, or on
    a profile whose models always have native tools."""
    from pipeline.profiles import resolve

    p = Pipeline.default()
    fallback, compat = p["fallback"], p["tool_compat"]
    tools = [{"name": "f", "parameters": {"type": "object"}}]

    def ctx(**req: object) -> Context:
        r = Request(**{**REQ, **req})  # type: ignore[arg-type]
        return Context(request=r, profile=resolve(r.model, r.api_base))

    assert fallback.stands_aside(ctx())  # type: ignore[attr-defined]
    assert not fallback.stands_aside(ctx(fallbacks=[{"model": "openai/n"}]))  # type: ignore[attr-defined]
    with_targets = Pipeline.default(fallbacks=[{"model": "openai/n"}])["fallback"]
    assert not with_targets.stands_aside(ctx())  # type: ignore[attr-defined]
    assert compat.stands_aside(ctx())  # type: ignore[attr-defined]
    assert compat.stands_aside(ctx(tools=tools))  # type: ignore[attr-defined]
    assert compat.stands_aside(ctx(model="openrouter/x/y"))  # type: ignore[attr-defined]
    assert not compat.stands_aside(ctx(model="openrouter/x/y", tools=tools))  # type: ignore[attr-defined]
