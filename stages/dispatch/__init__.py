"""dispatch: send each request through a backend; the answer comes out as ``Chunk``s.

consumes: ``Request``
emits: the backend's ``Chunk``s, as they arrive
passes through: every other event
buffers: nothing

Everything that is the same for every backend (``pipeline.backend``) is
here, once:

- a backend that needs a moment before it can send (importing its client
  library) has ``prepare()``, awaited before the clock starts;
- each pull from the backend is bounded: the first chunk must come within
  the policy's ``first_chunk_timeout_s`` of sending, each next one within
  ``idle_timeout_s``; a stall raises ``ProviderTimeout`` (transient). The
  timeouts measure the wait for bytes, not time our own process was busy
  (``pipeline.timeouts.StallGuard``, one timer per stream);
- before each request is sent, the call's target (``ctx.health``, set by
  the fallback segment) and the pipeline's usage limits (``ctx.meter``) may
  refuse it (``TargetCoolingDown``, ``UsageLimitExceeded``): then nothing
  is sent. Every ``pipeline.errors`` failure of the request is told to
  ``ctx.health`` (it may start the target's cool-down);
- the chunks of a retry attempt are recorded in ``ctx.attempt.recording``
  when dumps are on, and ``ctx.instrument.first_chunk(ctx)`` is called from
  inside the pull that brought an answer's first chunk;
- the backend's stream is closed (``aclose``) on every exit path: its end, an
  error, ``break`` or an exception downstream, cancellation, a timeout;
- ``pipeline.errors`` from the backend pass as they are (translating foreign
  exceptions is the backend's job); anything else passes untouched, a bug.

The backends: ``stages.dispatch.litellm`` (LiteLLM), ``stages.dispatch.openai``
(direct HTTP to OpenAI-compatible endpoints), ``stages.dispatch.replay`` (a
dump's chunks), ``pipeline.testing``'s scripted and function-driven doubles;
``stages.dispatch.auto`` routes each request to the direct backend or to
litellm by its provider profile, and ``stages.dispatch.simulated`` wraps any
of them for providers whose streaming is broken.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Generic, TypeVar

from pipeline.backend import Backend
from pipeline.context import Context
from pipeline.errors import PipelineError, ProviderTimeout
from pipeline.events import Event, Request
from pipeline.runner import closing
from pipeline.timeouts import Stalled, StallGuard

__all__ = ["Dispatch", "dispatch"]

B = TypeVar("B", bound=Backend)


class Dispatch(Generic[B]):
    """The dispatch stage over one backend (``dispatch(backend)`` makes one)."""

    __slots__ = ("_prepare", "backend", "name")

    def __init__(self, backend: B, *, name: str = "dispatch") -> None:
        self.backend = backend
        self.name = name
        self._prepare = getattr(backend, "prepare", None)

    def __repr__(self) -> str:
        return f"Dispatch({self.backend.name}, name={self.name!r})"

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream, ctx)

    async def aclose(self) -> None:
        """Release what the backend keeps for the running event loop."""
        await self.backend.aclose()

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                if self._prepare is not None:  # before the clock starts
                    await self._prepare(ev, ctx)
                health = ctx.health
                if health is not None:
                    health.admit()
                if ctx.meter is not None:
                    ctx.meter.admit(ev.model)
                policy = ctx.policy
                seconds, which = policy.first_chunk_timeout_s, "first"
                recording = ctx.attempt.recording if ctx.attempt is not None else None
                stream = self.backend.send(ev, ctx)
                pull = stream.__anext__
                guard = StallGuard()
                try:
                    while True:
                        try:
                            chunk = await guard.pull(pull(), seconds)
                        except StopAsyncIteration:
                            break
                        except Stalled:
                            stalled = ProviderTimeout(
                                f"no {which} chunk from the provider within {seconds}s"
                                " (the stream stalled)"
                            )
                        except PipelineError as exc:
                            if health is not None:
                                health.failed(exc)
                            raise
                        else:
                            if which == "first":
                                seconds, which = policy.idle_timeout_s, "next"
                                ctx.instrument.first_chunk(ctx)
                            if recording is not None:
                                recording.append(chunk)
                            yield chunk
                            continue
                        if health is not None:
                            health.failed(stalled)
                        raise stalled  # outside the except: nothing foreign chained
                finally:
                    guard.close()
                    close = getattr(stream, "aclose", None)
                    if close is not None:
                        await close()


def dispatch(backend: Backend, *, name: str = "dispatch") -> Dispatch[Backend]:
    """The dispatch stage sending every request through ``backend``."""
    return Dispatch(backend, name=name)
