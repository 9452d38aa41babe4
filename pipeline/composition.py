"""The composition root: the one module of ``pipeline`` that knows the stages.

``Pipeline.default()`` imports this lazily, so importing ``pipeline`` stays
cheap and the core never depends on ``stages``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pipeline.backend import Backend
from pipeline.fallbacks import FallbackPolicy, Target, coerce_targets
from pipeline.pipeline import Pipeline
from stages.cache_tag import cache_tag
from stages.dispatch import dispatch
from stages.dispatch.litellm import LiteLLMBackend, count_request_tokens
from stages.dispatch.simulated import simulated
from stages.empty_check import empty_check
from stages.fallback import fallback
from stages.normalize import normalize
from stages.reassemble import reassemble
from stages.retry import retry
from stages.tool_compat import tool_compat
from stages.usage import usage
from telemetry import TelemetryInstrument

__all__ = ["default_pipeline"]


def default_pipeline(
    *,
    backend: Backend | None = None,
    fallbacks: Sequence[Target | Mapping[str, Any]] = (),
    fallback_policy: FallbackPolicy | None = None,
    **options: Any,
) -> Pipeline:
    """fallback(normalize -> cache_tag -> retry(tool_compat(dispatch) -> reassemble -> usage
    -> empty_check)).

    ``backend`` is what dispatch sends through (default: ``LiteLLMBackend``),
    with simulated streaming where a request's profile asks for it.
    ``fallbacks`` are the targets every call moves on to (validated here,
    naming ``fallbacks[i].field``), by ``fallback_policy``'s rules; the
    fallback segment wraps normalize and cache_tag too, since they shape the
    request for one provider. ``options`` are ``Pipeline``'s keyword options;
    token estimates default to litellm's counter (off the event loop,
    offline), falling back to characters / 4.
    """
    options.setdefault("count_tokens", count_request_tokens)
    options.setdefault("instrument", TelemetryInstrument())  # spans only once an SDK is set up
    sender = simulated(backend if backend is not None else LiteLLMBackend())
    call = retry(tool_compat(dispatch(sender)), reassemble(), usage(), empty_check())
    targets = coerce_targets("fallbacks", fallbacks)
    return Pipeline(
        [fallback(normalize(), cache_tag(), call, targets=targets, policy=fallback_policy)],
        **options,
    )
