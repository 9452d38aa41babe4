"""fallback: the segment that moves a call on to its next target when one fails.

consumes: ``Request`` (each one runs the inner stages once per target tried)
emits: what the inner stages emit, and ``FallingBack`` before every switch
passes through: every other event
buffers: nothing

It wraps ``normalize``, ``cache_tag`` and ``retry`` (they shape and send
the request for one provider, so each target is shaped for its own). Its
targets are the request itself, then its fallbacks (``Request.fallbacks``,
else the pipeline's), in the order ``stages.fallback.plan`` says. Rules:

- it moves on only while nothing reached the consumer: once a
  ``TextDelta``, ``ReasoningDelta`` or ``ToolCall`` went downstream, a
  failure raises (``StreamInterrupted``, as retry says), and no other
  target is called;
- it moves on only for the failures its policy names
  (``pipeline.fallbacks.FallbackPolicy.on``), after the target's own retries
  ran out; any other failure is raised at once, and so is the last target's;
- a ``ContextWindowExceeded`` moves on only to a target with a larger window;
- targets that keep failing cool down (``stages.fallback.cooldown``) and are
  skipped by every call of the pipeline meanwhile: a call on such a target
  leaves it before its next request or wait, and new calls start on the
  next one;
- ``FallingBack(from_model, to_model, reason)`` comes before each switch;
  each target's run is a group of its own for the instrument (a span per
  target under this segment's span).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import ClassVar

from pipeline.context import Context
from pipeline.cost import prices_async
from pipeline.errors import PipelineError, StreamInterrupted, TargetCoolingDown
from pipeline.events import Event, FallingBack, Request, Retrying
from pipeline.fallbacks import FallbackPolicy, Target, fallback_reason
from pipeline.profiles import resolve
from pipeline.response import ResponseBuilder
from pipeline.runner import closing, once
from pipeline.secrets import guard_logger
from pipeline.stage import Segment, Stage
from stages.fallback.cooldown import Cooldowns, Health, cooldowns_of, target_key
from stages.fallback.plan import Planned, has_free, make_plan, pick

__all__ = ["Fallback", "fallback"]

log = guard_logger("llmpipe.fallback")


@dataclass(frozen=True, slots=True)
class Fallback:
    """A segment: its inner stages run once per target tried (see the module)."""

    stages: tuple[Stage, ...]
    targets: tuple[Target, ...] = ()
    policy: FallbackPolicy = field(default_factory=FallbackPolicy)
    name: str = "fallback"
    #: its own code starts no spans: what it logs or calls runs under the call's span
    contained: ClassVar[bool] = True

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment:
        return replace(self, stages=stages)

    def stands_aside(self, ctx: Context) -> bool:
        """With one target (no fallbacks here or on the request) there is nothing to do."""
        return not self.targets and not ctx.request.fallbacks

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream, ctx)

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                # (with no target but the request it is not run at all: ``stands_aside``)
                async with closing(self._targets(ev, ctx)) as outs:
                    async for out in outs:
                        yield out

    async def _targets(self, req: Request, ctx: Context) -> AsyncIterator[Event]:
        policy = self.policy
        plan = make_plan(req, self.targets, policy, await prices_async())
        if len(plan) == 1:
            async with closing(ctx.run(self.stages, once(plan[0].request))) as inner:
                async for out in inner:
                    yield out
            return
        cooldowns = cooldowns_of(ctx.shared)
        cooling = partial(_cooling, cooldowns, ctx)
        delivered = ResponseBuilder()  # what reached the consumer, across targets
        tried: list[str] = []
        current: Planned | None = None
        reason = ""
        last: PipelineError | None = None
        min_window: int | None = None
        failed: Context | None = None  # the context of the target that failed last
        while True:
            nxt = pick(plan, 0 if current is None else current.index + 1, min_window, cooling)
            if nxt is None:
                assert last is not None
                raise _gave_up(last, tried)
            if current is not None:
                log.warning(
                    "falling back from %s to %s (%s): %s",
                    current.request.model,
                    nxt.request.model,
                    reason,
                    last,
                )
                moving = FallingBack(
                    from_model=current.request.model, to_model=nxt.request.model, reason=reason
                )
                if failed is not None and last is not None:  # its group's span says what followed
                    ctx.instrument.group_failed(failed, last, moving)
                yield moving
            elif nxt.index > 0:
                skipped = plan[0].request.model
                tried.append(f"{skipped} (cooling_down)")
                yield FallingBack(
                    from_model=skipped, to_model=nxt.request.model, reason="cooling_down"
                )
            current = nxt
            treq = nxt.request
            health = Health(
                cooldowns,
                treq,
                policy,
                ctx.clock,
                partial(has_free, plan, nxt.index + 1, min_window, cooling),
            )
            tctx = ctx.replace(
                request=treq,
                profile=resolve(treq.model, treq.api_base),
                health=health,
                sleep=health.sleep(ctx.sleep),
            )
            attributes: dict[str, str | int | float | bool] = {
                "llmpipe.target.index": nxt.index + 1,
                "llmpipe.target.model": treq.model,
            }
            group = (f"target {treq.model}", attributes)
            failure: PipelineError | None = None
            async with closing(tctx.run(self.stages, once(treq), group=group)) as inner:
                while True:
                    try:
                        ev = await inner.__anext__()
                    except StopAsyncIteration:
                        return
                    except StreamInterrupted:
                        raise
                    except PipelineError as exc:
                        failure = exc
                        break
                    if type(ev) is Retrying and not delivered.delivered and health.should_leave():
                        failure = TargetCoolingDown(
                            f"{treq.model} is cooling down; leaving it before its next attempt",
                            model=treq.model,
                            seconds=health.remaining(),
                        )
                        break
                    delivered.feed(ev)
                    yield ev
            assert failure is not None
            if delivered.delivered:  # inner stages without a retry segment of their own
                raise StreamInterrupted(
                    f"the stream failed after content was delivered: {failure}",
                    partial_text=delivered.text,
                    partial_tool_calls=delivered.tool_calls,
                    transient=bool(getattr(failure, "transient", False)),
                ) from failure
            why = fallback_reason(failure)
            if why is None or not policy.moves_on(why):
                raise failure
            reason, last, failed = why, failure, tctx
            tried.append(f"{treq.model} ({why})")
            if why == "context_window" and nxt.window is not None:
                min_window = max(min_window or 0, nxt.window)


def _cooling(cooldowns: Cooldowns, ctx: Context, req: Request) -> bool:
    return cooldowns.remaining(target_key(req), ctx.clock()) > 0


def _gave_up(last: PipelineError, tried: Sequence[str]) -> PipelineError:
    """The last target's failure, noting every target tried (models and reasons only)."""
    last.add_note("fallback: tried " + ", then ".join(tried))
    return last


def fallback(
    *stages: Stage,
    targets: Sequence[Target] = (),
    policy: FallbackPolicy | None = None,
) -> Fallback:
    return Fallback(tuple(stages), tuple(targets), policy or FallbackPolicy())
