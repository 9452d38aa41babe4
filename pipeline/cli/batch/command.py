"""``llmpipe batch``: the command, from its arguments to the runner and an engine."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pipeline.cli.batch.input import Defaults
from pipeline.cli.shared import pipeline_for, policy_for, prepare
from pipeline.errors import InvalidRequest
from pipeline.limits import UsageLimits

if TYPE_CHECKING:
    from pipeline.cli.batch.ray_engine import WorkerSpec
    from pipeline.cli.batch.runner import BatchConfig

__all__ = ["batch", "worker_spec"]


async def batch(args: argparse.Namespace, err: TextIO) -> int:
    from pipeline.cli.batch.runner import BatchConfig

    limits = None
    if (
        args.max_cost is not None
        or args.max_total_tokens is not None
        or args.max_requests is not None
    ):
        if args.engine != "local":
            raise InvalidRequest(
                "--max-cost", "usage limits need --engine local (the Ray workers meter apart)"
            )
        limits = UsageLimits(
            max_cost_usd=args.max_cost,
            max_total_tokens=args.max_total_tokens,
            max_requests=args.max_requests,
        )
    config = BatchConfig(
        input=args.input,
        output=Path(args.output),
        defaults=Defaults(
            model=args.model,
            system=args.system,
            max_tokens=args.max_tokens,
            json_mode=args.json,
            api_base=args.api_base,
            api_key=args.api_key,
        ),
        concurrency=args.concurrency,
        retry_failed=args.retry_failed,
        strict=args.strict,
        progress=not args.quiet,
        progress_interval_s=args.progress_every,
        limits=limits,
    )
    if args.instrument is None:
        return await _run(args, config, err, None)
    from telemetry.propagation import batch_trace

    # one trace root for the run: every call's span, here or in a Ray worker, is under it
    with batch_trace(args.instrument, f"batch {args.input}") as traced:
        return await _run(args, config, err, traced.summary)


async def _run(
    args: argparse.Namespace,
    config: BatchConfig,
    err: TextIO,
    summary: Callable[[dict[str, int]], None] | None,
) -> int:
    from pipeline.cli.batch.runner import run_batch

    if args.engine == "local":
        async with pipeline_for(args) as pipe:
            return await run_batch(
                config,
                pipe,
                err=err,
                prepare=lambda: prepare(args, args.model, args.api_base, err),
                summary=summary,
            )
    from pipeline.cli.batch.ray_engine import RayEngine

    spec = worker_spec(args)
    engine = RayEngine(
        spec,
        workers=args.workers,
        concurrency=args.concurrency,
        address=args.ray_address,
        instrument=args.instrument,
    )
    try:
        pipe = pipeline_for(args)  # unused by the Ray engine: each worker builds its own
        return await run_batch(
            config, pipe, err=err, prepare=engine.start, engine=engine, summary=summary
        )
    finally:
        await engine.close()


def worker_spec(args: argparse.Namespace) -> WorkerSpec:
    """How each Ray worker builds its pipeline; it loads litellm while warming up only
    when the batch's model goes through it (as ``prepare`` does for the local engine)."""
    from pipeline.cli.batch.ray_engine import WorkerSpec
    from pipeline.composition import uses_litellm

    model = args.model
    return WorkerSpec(
        policy=policy_for(args.retries),
        trace=getattr(args, "trace", None),
        backend=args.backend,
        load_litellm=model is not None and uses_litellm(args.backend, model, args.api_base),
    )
