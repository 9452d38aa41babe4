"""What a call's trace shows of the segments with nothing to do, and of contained stages.

A segment that stands aside for a call (fallback without a fallback target,
tool_compat for a request without tools) has no span in that call, and its
inner stages hang where it would have; the same pipeline shows it again on
the next call that needs it. A ``contained`` stage has its span, but runs
with the span around it current (the call's, or that of the stage pulling
it), not its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from opentelemetry import trace

from pipeline.context import Context
from pipeline.events import Event
from pipeline.stage import stage
from tests.telemetry.conftest import Spans, assert_each_span_ended_once
from tests.telemetry.test_spans import REQ, ok_script

TOOLS = [{"name": "lookup", "description": "look it up", "parameters": {"type": "object"}}]


def parents(spans: Spans) -> dict[str, str]:
    """Each span's parent, by name (the root's is ``-``)."""
    names = {s.context.span_id: s.name for s in spans.finished}
    return {s.name: names[s.parent.span_id] if s.parent else "-" for s in spans.finished}


async def test_fallback_has_a_span_only_in_the_calls_that_have_a_fallback_target(
    spans: Spans,
) -> None:
    p = spans.pipeline([ok_script(), ok_script(), ok_script()])
    with_target = {**REQ, "fallbacks": [{"model": "openai/gpt-4o"}]}
    for req, has_fallback in ((REQ, False), (with_target, True), (REQ, False)):
        spans.exporter.clear()
        assert (await p.acomplete(req)).text == "Paris"
        tree = parents(spans)
        if has_fallback:
            assert tree["fallback"] == "chat gpt-4o-mini"
            assert tree["normalize"] == tree["retry"] == "target openai/gpt-4o-mini"
            assert tree["target openai/gpt-4o-mini"] == "fallback"
        else:
            assert "fallback" not in tree
            assert tree["normalize"] == tree["cache_tag"] == tree["retry"] == "chat gpt-4o-mini"
        assert_each_span_ended_once(spans.finished)


async def test_tool_compat_has_a_span_only_for_tools_on_a_profile_that_may_need_it(
    spans: Spans,
) -> None:
    p = spans.pipeline([ok_script(), ok_script(), ok_script()])
    routed = {**REQ, "model": "openrouter/some/model", "api_base": None}
    cases = (({**routed, "tools": TOOLS}, True), (routed, False), ({**REQ, "tools": TOOLS}, False))
    for req, has_compat in cases:
        spans.exporter.clear()
        assert (await p.acomplete(req)).text == "Paris"
        tree = parents(spans)
        if has_compat:
            assert tree["tool_compat"] == "attempt 1"
            assert tree["dispatch"] == "tool_compat"
        else:
            assert "tool_compat" not in tree
            assert tree["dispatch"] == "attempt 1"


def probe(seen: list[int]) -> Any:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async for ev in upstream:
            seen.append(trace.get_current_span().get_span_context().span_id)
            yield ev

    return run


async def test_a_contained_stage_runs_under_the_span_around_it_and_still_has_its_own(
    spans: Spans,
) -> None:
    """Around ``inner`` runs ``own`` (which pulls it, its span current); around ``outer``
    only contained stages and segments (empty_check, retry): the call's span."""
    own: list[int] = []
    inner: list[int] = []
    outer: list[int] = []
    p = (
        spans.pipeline([ok_script()])
        .insert_after("usage", stage("inner", probe(inner), contained=True))
        .insert_after("inner", stage("own", probe(own)))
        .insert_after("own", stage("outer", probe(outer), contained=True))
    )
    assert (await p.acomplete(REQ)).text == "Paris"
    assert set(own) == {spans.one("own").context.span_id}
    assert set(inner) == {spans.one("own").context.span_id}
    assert set(outer) == {spans.root().context.span_id}
    tree = parents(spans)
    for name in ("inner", "outer"):  # their spans are there all the same, counting events
        assert tree[name] == "attempt 1"
        attrs = dict(spans.one(name).attributes or {})
        assert attrs["llmpipe.stage.events_in"] == attrs["llmpipe.stage.events_out"] == len(own)
        assert isinstance(attrs["llmpipe.stage.self_time_s"], float)
    assert own
