"""What every ``llmpipe`` command shares: its pipeline, and loading the provider library."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, TextIO

from pipeline.cli.render import isatty
from pipeline.pipeline import Pipeline
from pipeline.policy import RetryPolicy

__all__ = ["LOADING_NOTICE_S", "load_provider", "pipeline_for", "policy_for"]

#: how long loading the provider library may take before a terminal is told
LOADING_NOTICE_S = 1.0


async def load_provider(err: TextIO) -> None:
    """Import litellm before the first call (seconds, the first time); a terminal is
    told when it takes more than ``LOADING_NOTICE_S``, on a line erased afterwards."""
    from stages.dispatch.litellm import import_litellm

    loading = asyncio.ensure_future(import_litellm())
    try:
        done, _ = await asyncio.wait({loading}, timeout=LOADING_NOTICE_S)
        if done or not isatty(err):
            await loading
            return
        err.write("llmpipe: loading the provider library…")
        err.flush()
        try:
            await loading
        finally:
            err.write("\r\x1b[2K")
            err.flush()
    finally:
        loading.cancel()  # nothing when it is done; else the waiter only, not the import


def policy_for(retries: int | None) -> RetryPolicy | None:
    """``--retries N``: every budget at N (``None``: the defaults)."""
    if retries is None:
        return None
    return RetryPolicy(rate_limit_retries=retries, transient_retries=retries, empty_retries=retries)


def pipeline_for(args: argparse.Namespace, **options: Any) -> Pipeline:
    """The default pipeline, with ``--retries`` and ``--trace`` applied."""
    policy = policy_for(getattr(args, "retries", None))
    if policy is not None:
        options.setdefault("policy", policy)
    if getattr(args, "instrument", None) is not None:
        options["instrument"] = args.instrument
    return Pipeline.default(**options)
