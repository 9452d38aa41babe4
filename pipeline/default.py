"""The composition root: the one module of ``pipeline`` that knows the stages.

``Pipeline.default()`` imports this lazily, so importing ``pipeline`` stays
cheap and the core never depends on ``stages``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pipeline.core import Pipeline
from pipeline.stage import Instrument
from stages.cache_tag import cache_tag
from stages.dispatch import litellm_dispatch
from stages.empty_check import empty_check
from stages.normalize import normalize
from stages.reassemble import reassemble
from stages.retry import retry
from stages.usage import usage

__all__ = ["default_pipeline"]


def default_pipeline(
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    clock: Callable[[], float] | None = None,
    instrument: Instrument | None = None,
) -> Pipeline:
    """normalize -> cache_tag -> retry(dispatch -> reassemble -> usage -> empty_check)."""
    return Pipeline(
        [
            normalize(),
            cache_tag(),
            retry(litellm_dispatch(), reassemble(), usage(), empty_check()),
        ],
        sleep=sleep,
        clock=clock,
        instrument=instrument,
    )
