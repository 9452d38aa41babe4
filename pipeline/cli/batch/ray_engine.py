"""``llmpipe batch --engine ray``: the calls of a batch on a pool of Ray actors.

The driver (the ``llmpipe batch`` process) keeps ``pipeline.cli.batch.runner``'s
contract and stays the single writer: it validates the input, skips what is
done, and appends each line as its result streams back. This module only
turns the items to do into outcomes (``RayEngine`` is a
``pipeline.cli.batch.engine.Engine``):

- a pool of ``workers`` async actors, each with one ``Pipeline`` built and
  warmed once (litellm imported, when the batch's model needs it), running
  many calls at once on its own event loop (``concurrency`` in flight in
  all, at most ``concurrency / workers`` on one actor); every call runs
  through ``pipeline.cli.batch.engine.call_one``, so a failure comes back as that id's
  row, never as an exception;
- Ray's own retries are off (``max_restarts=0``, ``max_task_retries=0``): the
  retry segment is the only retry layer. An actor that dies costs only the
  ids it had in flight: they are sent once more to a fresh actor, and if
  that fails too they are left unwritten for the next run;
- each actor needs a fraction of a CPU (``cpus_per_worker``, default 0.1):
  LLM calls wait on the network, and at 1 CPU each a 2-CPU node could place
  only 2 actors and the rest would wait for ever;
- without ``address`` a local cluster is started for the run on 127.0.0.1
  only (no dashboard) and stopped after; with one, the run joins it;
- the ``OTEL_*`` and ``LLMPIPE_*`` variables and the W3C trace context of
  the batch's root span (the CLI's ``batch {file}``) travel to the actors,
  so every call's span joins the batch's trace; every actor uses the same
  gate settings (``LLMPIPE_GATE_URL``: one Redis for all of them).

Ray is imported only here, and only when this engine starts. It is an
application module (a composition root, like the CLI): it builds the
workers' pipelines and their telemetry. The worker, the pool and its
scheduler stay in one module (a little over 300 lines): they change together.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import math
import os
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.cli.batch.engine import EngineError, Outcome, call_one
from pipeline.cli.batch.input import Item
from pipeline.errors import InvalidRequest
from pipeline.events import Finish, ToolCall
from pipeline.pipeline import Pipeline
from pipeline.policy import RetryPolicy

__all__ = ["RayEngine", "Worker", "WorkerSpec"]

log = logging.getLogger("llmpipe.batch")

#: the variables that travel to the workers (telemetry and llmpipe's own; never API keys)
FORWARDED = ("OTEL_", "LLMPIPE_")

#: what a worker sends back per id (an ``Outcome`` without its item)
Result = tuple[str, str, list[ToolCall], Finish | None, int, Exception | None, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSpec:
    """How each worker builds its pipeline (pickled to every actor).

    ``pipeline``: a function returning the pipeline to use (default: the
    default pipeline with ``policy`` and ``backend``, ``--backend``'s name);
    ``trace``: the ``--trace`` exporter, set up in each worker; ``env``:
    variables set in each worker first; ``load_litellm``: import litellm
    while warming up (when the batch's model goes through it; a worker whose
    calls all take the direct backend never imports it, and a line naming
    a model that needs it loads it on that line's call).
    """

    policy: RetryPolicy | None = None
    trace: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    pipeline: Callable[[], Pipeline] | None = None
    backend: str = "auto"
    load_litellm: bool = True


class Worker:
    """The body of one actor: one pipeline, warmed once, many calls at once."""

    def __init__(self, spec: WorkerSpec) -> None:
        os.environ.update(spec.env)
        for name in ("LiteLLM", "llmpipe.retry"):  # as the CLI: retries are counted, not logged
            logging.getLogger(name).setLevel(logging.ERROR)
        self._telemetry: Any = None
        self.load_litellm = spec.load_litellm
        options: dict[str, Any] = {}
        if spec.trace is not None:
            from telemetry import setup

            self._telemetry = setup(spec.trace, set_global=False)
            options["instrument"] = self._telemetry.instrument()
        if spec.policy is not None:
            options["policy"] = spec.policy
        if spec.pipeline is not None:
            pipe = spec.pipeline()
            self.pipe = pipe.with_options(**options) if options else pipe
        else:
            self.pipe = Pipeline.default(backend=spec.backend, **options)

    async def ready(self) -> int:
        """Import litellm now if the spec says so (the first calls then do not pay for
        it); the actor's pid."""
        if self.load_litellm:
            from stages.dispatch.litellm import import_litellm

            await import_litellm()
        return os.getpid()

    async def call(self, carrier: dict[str, str], item: Item) -> Result:
        from telemetry.propagation import attached

        with attached(carrier):
            out = await call_one(self.pipe, item)
        return (
            out.text,
            out.reasoning,
            out.tool_calls,
            out.finish,
            out.retries,
            _portable(out.error),
            out.elapsed_s,
        )

    async def close(self) -> None:
        """Flush spans and close pooled connections before the actor is killed."""
        try:
            await self.pipe.aclose()
        finally:
            if self._telemetry is not None:
                self._telemetry.shutdown()


def _portable(error: Exception | None) -> Exception | None:
    """The error itself if it pickles (``pipeline.errors`` do), else a stand-in."""
    if error is None:
        return None
    import pickle

    try:
        pickle.dumps(error)
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


class RayEngine:
    """A ``pipeline.cli.batch.engine.Engine`` over a pool of Ray actors (see the module)."""

    def __init__(
        self,
        spec: WorkerSpec,
        *,
        workers: int = 4,
        concurrency: int = 8,
        address: str | None = None,
        cpus_per_worker: float = 0.1,
        instrument: object | None = None,
    ) -> None:
        if importlib.util.find_spec("ray") is None:
            raise InvalidRequest("--engine", "ray is not installed: pip install 'llmpipe[ray]'")
        self.spec = spec
        self.workers = workers
        self.concurrency = concurrency
        self.per_worker = max(1, math.ceil(concurrency / workers))
        self.address = address
        self.cpus_per_worker = cpus_per_worker
        self.instrument = instrument
        self._ray: Any = None
        self._connected = False
        self._actors: list[Any] = []
        self._replacements = 0

    def describe(self) -> str:
        where = self.address or "a local Ray cluster"
        return f"{self.workers} Ray workers ({where})"

    async def start(self) -> None:
        """Start (or join) the cluster and the pool; return once every actor is warm."""
        if self.address is None:
            # Ray then uses 127.0.0.1 and binds its servers there only; read on import.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        import ray

        self._ray = ray
        if not ray.is_initialized():
            try:
                await asyncio.to_thread(
                    ray.init,
                    address=self.address or "local",
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    namespace="llmpipe",
                )
            except Exception as exc:  # a wrong address, a cluster that will not start
                if self.address:
                    field, what = "--ray-address", f"cannot join the Ray cluster at {self.address}"
                else:
                    field, what = "--engine", "cannot start a local Ray cluster"
                raise InvalidRequest(field, f"{what}: {type(exc).__name__}: {exc}") from exc
            self._connected = True
        self._actors = [self._new_actor() for _ in range(self.workers)]
        await asyncio.gather(*(_wait(a.ready.remote()) for a in self._actors))

    def _new_actor(self) -> Any:
        actor = self._ray.remote(
            num_cpus=self.cpus_per_worker,
            max_restarts=0,
            max_task_retries=0,
            max_concurrency=self.per_worker + 2,  # + ready/close beside the calls
        )(Worker)
        env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}
        spec = self.spec if not env else _with_env(self.spec, env)
        return actor.remote(spec)

    @contextlib.asynccontextmanager
    async def outcomes(
        self, items: list[Item], *, on_retry: Callable[[], None]
    ) -> AsyncIterator[AsyncIterator[Outcome]]:
        run = self._run(items, on_retry)
        try:
            yield run
        finally:
            await run.aclose()

    async def _run(
        self, items: list[Item], on_retry: Callable[[], None]
    ) -> AsyncGenerator[Outcome, None]:
        from telemetry.propagation import current_carrier

        # the batch's root span is current here (the CLI's): the workers' calls join it
        carrier = current_carrier()
        async with contextlib.aclosing(self._schedule(items, carrier, on_retry)) as outcomes:
            async for outcome in outcomes:
                yield outcome

    async def _schedule(
        self, items: list[Item], carrier: dict[str, str], on_retry: Callable[[], None]
    ) -> AsyncGenerator[Outcome, None]:
        ray = self._ray
        queue = deque(range(len(items)))
        sent = [0] * len(items)  # times each item was handed to a worker
        load = [0] * len(self._actors)
        alive = [True] * len(self._actors)
        running: dict[asyncio.Future[Result], tuple[int, int, Any]] = {}
        lost = 0
        try:
            while queue or running:
                while queue and len(running) < self.concurrency:
                    free = [i for i, n in enumerate(load) if alive[i] and n < self.per_worker]
                    if not free:
                        break
                    slot = min(free, key=load.__getitem__)
                    index = queue.popleft()
                    ref = self._actors[slot].call.remote(carrier, items[index])
                    running[asyncio.wrap_future(ref.future())] = (index, slot, ref)
                    load[slot] += 1
                    sent[index] += 1
                if not running:  # every worker is gone: the rest waits for the next run
                    lost += len(queue)
                    queue.clear()
                    break
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for future in done:
                    index, slot, _ref = running.pop(future)
                    load[slot] -= 1
                    try:
                        result = future.result()
                    except ray.exceptions.RayError as exc:
                        if alive[slot] and isinstance(exc, ray.exceptions.RayActorError):
                            self._replace(slot, alive, exc)
                        if sent[index] < 2:
                            queue.appendleft(index)
                        else:
                            lost += 1
                        continue
                    outcome = _outcome(items[index], result)
                    for _ in range(outcome.retries):
                        on_retry()
                    yield outcome
        finally:
            for _index, _slot, ref in running.values():
                with contextlib.suppress(Exception):
                    ray.cancel(ref)
        if lost:
            raise EngineError(
                f"{lost} id{'s were' if lost != 1 else ' was'} not run: their Ray workers died"
            )

    def _replace(self, slot: int, alive: list[bool], exc: BaseException) -> None:
        """A fresh actor for one that died (at most ``workers`` of them per run)."""
        log.warning("batch: a Ray worker died (%s)", type(exc).__name__)
        if self._replacements >= self.workers:
            alive[slot] = False
            return
        self._replacements += 1
        self._actors[slot] = self._new_actor()

    async def close(self) -> None:
        """Flush and stop the actors; disconnect (which stops a local cluster this run started)."""
        ray = self._ray
        if ray is None:
            return
        actors, self._actors = self._actors, []
        closing = [_wait(a.close.remote()) for a in actors]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*closing, return_exceptions=True), 30)
        for actor in actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        if self._connected:
            await asyncio.to_thread(ray.shutdown)
            self._connected = False


def _with_env(spec: WorkerSpec, env: Mapping[str, str]) -> WorkerSpec:
    return replace(spec, env={**env, **spec.env})


async def _wait(ref: Any) -> Any:
    return await asyncio.wrap_future(ref.future())


def _outcome(item: Item, result: Result) -> Outcome:
    text, reasoning, calls, finish, retries, error, elapsed = result
    return Outcome(
        item,
        text=text,
        reasoning=reasoning,
        tool_calls=calls,
        finish=finish,
        retries=retries,
        error=error,
        elapsed_s=elapsed,
    )
