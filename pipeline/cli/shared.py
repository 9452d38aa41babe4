"""What every ``llmpipe`` command shares: its pipeline, and loading the provider library."""

from __future__ import annotations

import argparse
import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TextIO

from pipeline.cli.render import isatty
from pipeline.pipeline import Pipeline
from pipeline.policy import RetryPolicy

__all__ = ["LOADING_NOTICE_S", "load_provider", "pipeline_for", "policy_for", "prepare", "started"]

#: how long loading the provider library may take before a terminal is told
LOADING_NOTICE_S = 1.0


def started() -> None:
    """Start-up is over: what exists now (the interpreter, the libraries, litellm's
    tables) lives until exit, so the garbage collector stops walking it
    (``gc.freeze``; about a fifth of litellm's collector time on long streams).
    The application's choice; the library never freezes anything."""
    gc.freeze()


async def prepare(
    args: argparse.Namespace, model: str | None, api_base: str | None, err: TextIO
) -> None:
    """Before the first call: load litellm if the calls of ``model`` go through it
    (first, so neither the timings nor --trace count the import); then ``started``.
    A batch whose lines name other models loads it on the first such line."""
    from pipeline.composition import uses_litellm

    if model is not None and uses_litellm(getattr(args, "backend", "auto"), model, api_base):
        await load_provider(err)
    else:
        started()


async def load_provider(err: TextIO) -> None:
    """Import litellm before the first call (seconds, the first time); a terminal is
    told when it takes more than ``LOADING_NOTICE_S``, on a line erased afterwards."""
    from stages.dispatch.litellm import import_litellm

    try:
        await _loading(import_litellm(), err)
    finally:
        started()


async def _loading(work: Coroutine[Any, Any, object], err: TextIO) -> None:
    loading = asyncio.ensure_future(work)
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
    """The default pipeline, with ``--retries``, ``--trace`` and ``--backend`` applied."""
    policy = policy_for(getattr(args, "retries", None))
    if policy is not None:
        options.setdefault("policy", policy)
    if getattr(args, "instrument", None) is not None:
        options["instrument"] = args.instrument
    options.setdefault("backend", getattr(args, "backend", "auto"))
    return Pipeline.default(**options)
