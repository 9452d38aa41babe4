"""retry: the segment that makes the call, and makes it again when that can help.

consumes: ``Request`` (each one starts attempts of the inner stages)
emits: what the inner stages emit, and ``Retrying`` before every wait
passes through: every other event
buffers: nothing

Rules (``pipeline.policy`` has the numbers):

- a failure is retried only while nothing reached the consumer: once a
  ``TextDelta``, ``ReasoningDelta`` or ``ToolCall`` went downstream, every
  failure (a ``PipelineError``, retryable or not) raises
  ``StreamInterrupted``, carrying the partial output, whether asking again
  makes sense (``transient``, the cause's) and the cause chained; nothing is
  ever delivered twice and nothing delivered is lost;
- rate limits, transient failures and empty answers have separate budgets;
  when one runs out, ``RetriesExhausted`` is raised, chained from the last
  failure and an instance of its class too (``except RateLimited`` still
  catches it); other errors are raised at once;
- internal errors (``InternalError``, and any exception that is not a
  ``PipelineError``) are bugs: they pass through untouched;
- waits go through ``ctx.sleep``, and calls to one endpoint share a gate
  (``stages.gate``: in-process, or in Redis across processes): a 429 makes
  every call to that endpoint wait;
- an optional deadline bounds the whole call, waits included;
- rate limits and empty answers are dumped when dumps are on
  (``stages.dumps``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from pipeline.context import Attempt, Context
from pipeline.errors import (
    EmptyResponse,
    PipelineError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    RetriesExhausted,
    StreamInterrupted,
    redact,
)
from pipeline.events import Event, Request, Retrying
from pipeline.policy import (
    RETRY_CAUSES,
    RetryCause,
    RetryPolicy,
    jittered,
    retry_delay,
    server_delay,
)
from pipeline.response import ResponseBuilder
from pipeline.runner import closing, once
from pipeline.secrets import guard_logger
from pipeline.stage import Segment, Stage
from stages.dumps import DumpFile, dump_dir, write_dump
from stages.gate import select_gate

__all__ = ["Retry", "cause_of", "retry"]

log = guard_logger("llmpipe.retry")


def cause_of(exc: BaseException) -> RetryCause | None:
    """The retry budget a failure draws on, or ``None`` if it is not retried."""
    if isinstance(exc, RetriesExhausted):  # an inner segment already spent a budget on it
        return None
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, EmptyResponse):
        return "empty"
    if isinstance(exc, ProviderError | PipelineError) and getattr(exc, "transient", False):
        return "transient"
    return None


def delay_for(
    cause: RetryCause, exc: PipelineError, n: int, policy: RetryPolicy
) -> tuple[float, bool]:
    """``(seconds, server_given)`` before retry number ``n`` (from 0) of ``cause``."""
    if cause == "empty":
        return policy.empty_delay_s, False
    headers = exc.headers if isinstance(exc, ProviderError) else None
    delay = retry_delay(n, headers, base=policy.backoff_base_s, max_delay=policy.max_delay_s)
    given = server_delay(headers) is not None
    if policy.jitter and not given:
        delay = jittered(delay, cap=policy.max_delay_s)
    return delay, given


@dataclass(frozen=True, slots=True)
class Retry:
    """A segment: its inner stages run once per attempt."""

    stages: tuple[Stage, ...]
    name: str = "retry"
    #: its own code starts no spans: what it logs or calls runs under the call's span
    contained: ClassVar[bool] = True

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
                async with closing(self._attempts(ev, ctx)) as attempts:
                    async for out in attempts:
                        yield out

    async def _attempts(self, req: Request, ctx: Context) -> AsyncIterator[Event]:
        policy = ctx.policy
        used: dict[RetryCause, int] = dict.fromkeys(RETRY_CAUSES, 0)
        deadline = None if policy.deadline_s is None else ctx.clock() + policy.deadline_s
        gate = select_gate(ctx, req)
        dumps = dump_dir(policy.dump_dir)
        delivered = ResponseBuilder()  # what reached the consumer, across attempts
        attempt = 0
        while True:
            attempt += 1
            current = Attempt(attempt, recording=[] if dumps is not None else None)
            inner_ctx = ctx.for_attempt(current)
            try:
                async with (
                    gate.slot(ctx.clock, ctx.sleep),
                    closing(
                        inner_ctx.run(self.stages, once(req), group=(f"attempt {attempt}", {}))
                    ) as inner,
                ):
                    while True:
                        try:
                            ev = await _pull(inner, ctx, deadline)
                        except StopAsyncIteration:
                            break
                        delivered.feed(ev)
                        yield ev
                return
            except StreamInterrupted:
                raise  # an inner segment's: it already carries what was delivered
            except PipelineError as exc:
                if delivered.delivered:
                    raise StreamInterrupted(
                        f"the stream failed after content was delivered: {exc}",
                        partial_text=delivered.text,
                        partial_tool_calls=delivered.tool_calls,
                        transient=bool(getattr(exc, "transient", False)),
                    ) from exc
                cause = cause_of(exc)
                if cause is None or policy.budget(cause) == 0:
                    raise
                if dumps is not None and cause in ("rate_limited", "empty"):
                    await _dump(dumps, req, ctx, exc, cause, current)
                if used[cause] >= policy.budget(cause):
                    raise RetriesExhausted.after(
                        exc,
                        f"{req.model}: gave up after {attempt} attempts ({cause}): {exc}",
                        attempts=attempt,
                        reason=cause,
                    ) from exc
                delay, given = delay_for(cause, exc, used[cause], policy)
                used[cause] += 1
                if deadline is not None and ctx.clock() + delay > deadline:
                    raise RetriesExhausted.after(
                        exc,
                        f"{req.model}: the {policy.deadline_s}s deadline leaves no time to"
                        f" wait {delay:.1f}s and retry ({cause}): {exc}",
                        attempts=attempt,
                        reason="deadline",
                    ) from exc
                if cause == "rate_limited" or given:
                    await gate.pause(delay, ctx.clock)
                log.warning(
                    "%s: %s (%s); retrying in %.1fs (retry %d of %d)",
                    req.model,
                    cause,
                    redact(str(exc), req.api_key),
                    delay,
                    used[cause],
                    policy.budget(cause),
                )
                retrying = Retrying(attempt=attempt, delay_s=delay, reason=cause)
                ctx.instrument.group_failed(inner_ctx, exc, retrying)
            yield retrying
            await ctx.sleep(delay)


async def _pull(inner: AsyncIterator[Event], ctx: Context, deadline: float | None) -> Event:
    """The next event; the deadline bounds the pull, never the yield."""
    if deadline is None:
        return await inner.__anext__()
    remaining = deadline - ctx.clock()
    try:
        async with asyncio.timeout(max(remaining, 0.0)):
            return await inner.__anext__()
    except TimeoutError:
        raise ProviderTimeout(f"the call's deadline passed ({ctx.policy.deadline_s}s)") from None


async def _dump(
    directory: Path,
    req: Request,
    ctx: Context,
    exc: PipelineError,
    cause: RetryCause,
    attempt: Attempt,
) -> None:
    dump = DumpFile.of(
        request=req,
        error_kind=cause,
        error=str(exc),
        attempt=attempt.number,
        tokens=await ctx.count_tokens(req),
        chunks=attempt.recording or (),
    )
    path = await write_dump(directory, dump, max_files=ctx.policy.max_dumps)
    if path is not None:
        log.warning("%s: failed request dumped to %s", req.model, path)


def retry(*stages: Stage) -> Retry:
    return Retry(tuple(stages))
