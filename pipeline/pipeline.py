"""``Pipeline``: an immutable, ordered, named list of stages.

Editing a pipeline (``replace``, ``insert_before``, ``insert_after``,
``remove``) returns a new one; stages are found by name anywhere, including
inside segments such as ``retry``. Names are unique across the whole tree.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pipeline.context import Context, SharedState
from pipeline.errors import PipelineMisuse, StageNotFound
from pipeline.events import Event
from pipeline.eventstream import EventStream, collect, run_sync
from pipeline.limits import UsageLimits, UsageMeter
from pipeline.policy import RetryPolicy
from pipeline.profiles import resolve
from pipeline.request import Request
from pipeline.response import Response
from pipeline.runner import once
from pipeline.stage import Instrument, Segment, Stage
from pipeline.tokens import TokenCounter

__all__ = ["Pipeline"]

_Edit = Callable[[tuple[Stage, ...], int], tuple[Stage, ...]]
_OPTION_FIELDS = ("sleep", "clock", "instrument", "policy", "count_tokens", "limits")


@dataclass(frozen=True, slots=True)
class Options:
    """What a pipeline hands every run besides its stages (``None``: the default)."""

    sleep: Callable[[float], Awaitable[None]] | None = None
    clock: Callable[[], float] | None = None
    instrument: Instrument | None = None
    policy: RetryPolicy | None = None
    count_tokens: TokenCounter | None = None
    limits: UsageMeter | None = None


class Pipeline:
    """An immutable, ordered, named list of stages, and the way to run them.

    ``sleep`` and ``clock`` are handed to every stage through the context
    (tests inject fakes); ``instrument`` observes every run and stage run
    (``telemetry.TelemetryInstrument`` adds spans and metrics);
    ``policy`` sets retries, timeouts and dumps; ``count_tokens`` estimates
    request tokens when the provider reports none. ``limits``
    (``pipeline.limits.UsageLimits``) caps the requests, tokens and cost of
    every call of this pipeline together: a ``UsageLimits`` starts a meter
    at zero, kept by the pipelines derived from this one (``usage`` reads
    it); pass a ``UsageMeter`` to share one between pipelines. ``shared`` is
    the state that outlives one request, kept by the pipelines derived from
    this one.

    ``async with pipeline:`` (or ``await pipeline.aclose()``) releases what
    its stages hold for the running event loop, such as pooled connections.
    """

    __slots__ = ("_options", "_shared", "_stages")

    def __init__(
        self,
        stages: tuple[Stage, ...] | list[Stage],
        *,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
        instrument: Instrument | None = None,
        policy: RetryPolicy | None = None,
        count_tokens: TokenCounter | None = None,
        limits: UsageLimits | UsageMeter | None = None,
        shared: SharedState | None = None,
    ) -> None:
        self._stages = tuple(stages)
        meter = UsageMeter(limits) if isinstance(limits, UsageLimits) else limits
        if meter is not None and not isinstance(meter, UsageMeter):
            raise TypeError(
                f"limits must be UsageLimits or a UsageMeter, got {type(limits).__name__}"
            )
        self._options = Options(sleep, clock, instrument, policy, count_tokens, meter)
        self._shared = shared if shared is not None else SharedState()
        seen: set[str] = set()
        for st in _walk(self._stages):
            if not isinstance(st, Stage):
                raise PipelineMisuse(f"{st!r} is not a stage (it needs a name and __call__)")
            if st.name in seen:
                raise PipelineMisuse(f"duplicate stage name {st.name!r}")
            seen.add(st.name)

    @classmethod
    def default(cls, **options: Any) -> Pipeline:
        """The default pipeline: fallback(normalize -> cache_tag ->
        retry(tool_compat(dispatch) -> reassemble -> usage -> empty_check)).

        Takes the keyword options of ``Pipeline()`` (``policy=``, ``sleep=``,
        ``limits=``, ...), ``backend=``: what dispatch sends through: ``"auto"``
        (the default: direct HTTP where the provider profile says the endpoint
        speaks OpenAI chat-completions, litellm everywhere else), ``"litellm"``
        (litellm for everything), ``"openai"`` (direct for everything), or a
        ``pipeline.backend.Backend``; and ``fallbacks=``
        (``pipeline.fallbacks.Target``s, or dicts of their fields) with
        ``fallback_policy=`` (``FallbackPolicy``): the targets every call
        moves on to when its model fails before content.
        """
        from pipeline.composition import default_pipeline

        return default_pipeline(**options)

    @property
    def policy(self) -> RetryPolicy:
        return self._options.policy or RetryPolicy()

    @property
    def usage(self) -> UsageMeter | None:
        """The meter of ``limits`` (requests, tokens, cost so far), or ``None`` without limits."""
        return self._options.limits

    # --- inspection ------------------------------------------------------------

    @property
    def stages(self) -> tuple[Stage, ...]:
        return self._stages

    @property
    def names(self) -> list[str]:
        """Every stage name, depth first (segments before their inner stages)."""
        return [st.name for st in _walk(self._stages)]

    def __getitem__(self, name: str) -> Stage:
        for st in _walk(self._stages):
            if st.name == name:
                return st
        raise StageNotFound(f"no stage named {name!r}; stages are {self.names}")

    def __repr__(self) -> str:
        return f"Pipeline({_describe(self._stages)})"

    # --- editing (each returns a new pipeline) ------------------------------------

    def replace(self, name: str, new: Stage) -> Pipeline:
        return self._edit(name, lambda seq, i: (*seq[:i], new, *seq[i + 1 :]))

    def insert_before(self, name: str, new: Stage) -> Pipeline:
        return self._edit(name, lambda seq, i: (*seq[:i], new, *seq[i:]))

    def insert_after(self, name: str, new: Stage) -> Pipeline:
        return self._edit(name, lambda seq, i: (*seq[: i + 1], new, *seq[i + 1 :]))

    def remove(self, name: str) -> Pipeline:
        return self._edit(name, lambda seq, i: (*seq[:i], *seq[i + 1 :]))

    def with_options(self, **changes: Any) -> Pipeline:
        """The same stages with other options (``sleep``, ``clock``, ``instrument``,
        ``policy``, ``count_tokens``, ``limits``); the shared state is kept
        (and the usage meter, unless ``limits`` is given)."""
        return self._derive(self._stages, replace(self._options, **changes))

    def _edit(self, name: str, edit: _Edit) -> Pipeline:
        stages = _edit_in(self._stages, name, edit)
        if stages is None:
            raise StageNotFound(f"no stage named {name!r}; stages are {self.names}")
        return self._derive(stages, self._options)

    def _derive(self, stages: tuple[Stage, ...], options: Options) -> Pipeline:
        return Pipeline(
            stages, shared=self._shared, **{f: getattr(options, f) for f in _OPTION_FIELDS}
        )

    # --- running ----------------------------------------------------------------

    def context(self, request: Request) -> Context:
        """A fresh per-request context."""
        ctx = Context(
            request=request,
            profile=resolve(request.model, request.api_base),
            policy=self.policy,
            shared=self._shared,
        )
        opts = self._options
        if opts.sleep is not None:
            ctx.sleep = opts.sleep
        if opts.clock is not None:
            ctx.clock = opts.clock
        if opts.instrument is not None:
            ctx.instrument = opts.instrument
        if opts.count_tokens is not None:
            ctx.count_tokens = opts.count_tokens
        ctx.meter = opts.limits
        return ctx

    def run(self, request: Request | Mapping[str, Any]) -> AsyncIterator[Event]:
        """The raw event iterator (prefer ``stream``, which closes it for you)."""
        req = _as_request(request)
        ctx = self.context(req)
        return ctx.instrument.run(self._stages, once(req), ctx)

    def stream(self, request: Request | Mapping[str, Any]) -> EventStream:
        """``async with p.stream(req) as events: async for ev in events: ...``.

        Leaving the block (normally, by ``break``, an exception or
        cancellation) closes every stage and the HTTP response.
        """
        req = _as_request(request)
        return EventStream(lambda: self.run(req))

    async def acomplete(self, request: Request | Mapping[str, Any]) -> Response:
        """Run the request to the end and collect the answer."""
        async with self.stream(request) as events:
            return await collect(events)

    def complete(self, request: Request | Mapping[str, Any]) -> Response:
        """Blocking ``acomplete``; works inside a running event loop too (on a worker thread)."""
        req = _as_request(request)
        return run_sync(lambda: self._complete_in_own_loop(req))

    async def _complete_in_own_loop(self, req: Request) -> Response:
        try:
            return await self.acomplete(req)
        finally:
            await self.aclose()

    # --- resources --------------------------------------------------------------

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release what this pipeline holds for the running event loop.

        That is what its stages hold (each stage with an ``aclose()``, such as
        dispatch: its backend's pooled connections) and what its shared state
        holds (a Redis gate's client). Call it, or leave ``async with
        pipeline:``, before an event loop you made ends; ``complete()`` does
        for the loop it makes. Only the running loop's resources are closed
        (other loops' connections stay pooled), and the pipeline stays usable:
        its next call opens what it needs again. Every resource is closed even
        when one fails; the first failure is raised after.
        """
        failures: list[Exception] = []
        for close in self._closers():
            try:
                await close()
            except Exception as exc:
                failures.append(exc)
        if failures:
            raise failures[0]

    async def release_loop(self) -> None:
        """Deprecated alias of ``aclose()``."""
        warnings.warn(
            "Pipeline.release_loop() is deprecated: use await pipeline.aclose(),"
            " or async with pipeline",
            DeprecationWarning,
            stacklevel=2,
        )
        await self.aclose()

    def _closers(self) -> list[Callable[[], Awaitable[object]]]:
        """Every stage's ``aclose`` (each object once), then the shared state's."""
        closers: list[Callable[[], Awaitable[object]]] = []
        seen: set[int] = set()
        for st in _walk(self._stages):
            close = getattr(st, "aclose", None)
            if callable(close) and id(st) not in seen:
                seen.add(id(st))
                closers.append(close)
        return closers + self._shared.closables()


def _as_request(request: Request | Mapping[str, Any]) -> Request:
    if isinstance(request, Request):
        return request
    if isinstance(request, Mapping):
        return Request(**request)
    raise TypeError(f"expected a Request or a dict, got {type(request).__name__}")


def _walk(stages: tuple[Stage, ...]) -> Iterator[Stage]:
    for st in stages:
        yield st
        if isinstance(st, Segment):
            yield from _walk(st.stages)


def _edit_in(stages: tuple[Stage, ...], name: str, edit: _Edit) -> tuple[Stage, ...] | None:
    for i, st in enumerate(stages):
        if st.name == name:
            return edit(stages, i)
        if isinstance(st, Segment):
            inner = _edit_in(st.stages, name, edit)
            if inner is not None:
                return (*stages[:i], st.with_stages(inner), *stages[i + 1 :])
    return None


def _describe(stages: tuple[Stage, ...]) -> str:
    parts = []
    for st in stages:
        if isinstance(st, Segment):
            parts.append(f"{st.name}({_describe(st.stages)})")
        else:
            parts.append(st.name)
    return " -> ".join(parts)
