"""The composition root: the one module of ``pipeline`` that knows the stages.

``Pipeline.default()`` imports this lazily, so importing ``pipeline`` stays
cheap and the core never depends on ``stages``.
"""

from __future__ import annotations

from typing import Any

from pipeline.pipeline import Pipeline
from stages.cache_tag import cache_tag
from stages.dispatch.litellm.backend import litellm_dispatch
from stages.dispatch.litellm.tokens import count_request_tokens
from stages.empty_check import empty_check
from stages.normalize import normalize
from stages.reassemble import reassemble
from stages.retry import retry
from stages.tool_compat import tool_compat
from stages.usage import usage
from telemetry import TelemetryInstrument

__all__ = ["default_pipeline"]


def default_pipeline(**options: Any) -> Pipeline:
    """normalize -> cache_tag -> retry(tool_compat(dispatch) -> reassemble -> usage -> empty_check).

    ``options`` are ``Pipeline``'s keyword options; token estimates default to
    litellm's counter (off the event loop, offline), falling back to
    characters / 4.
    """
    options.setdefault("count_tokens", count_request_tokens)
    options.setdefault("instrument", TelemetryInstrument())  # spans only once an SDK is set up
    return Pipeline(
        [
            normalize(),
            cache_tag(),
            retry(tool_compat(litellm_dispatch()), reassemble(), usage(), empty_check()),
        ],
        **options,
    )
