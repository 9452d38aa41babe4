"""The composition root: the one module of ``pipeline`` that knows the stages.

``Pipeline.default()`` imports this lazily, so importing ``pipeline`` stays
cheap and the core never depends on ``stages``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pipeline.backend import Backend
from pipeline.fallbacks import FallbackPolicy, Target, coerce_targets
from pipeline.pipeline import Pipeline
from pipeline.profiles import resolve
from stages.cache_tag import cache_tag
from stages.dispatch import dispatch
from stages.dispatch.auto import AutoBackend
from stages.dispatch.litellm import LiteLLMBackend, count_request_tokens
from stages.dispatch.openai import OpenAIBackend
from stages.dispatch.simulated import simulated
from stages.empty_check import empty_check
from stages.fallback import fallback
from stages.normalize import normalize
from stages.reassemble import reassemble
from stages.retry import retry
from stages.tool_compat import tool_compat
from stages.usage import usage
from telemetry import TelemetryInstrument

__all__ = ["BACKENDS", "BackendName", "default_pipeline", "make_backend", "uses_litellm"]

#: the backends ``Pipeline.default(backend=...)`` knows by name
BackendName = Literal["auto", "litellm", "openai"]
BACKENDS: tuple[BackendName, ...] = ("auto", "litellm", "openai")


def make_backend(backend: Backend | BackendName | None = None) -> Backend:
    """The backend named (``None`` is ``"auto"``); a ``Backend`` is used as it is.

    - ``"auto"``: the direct backend where the request's provider profile says
      the endpoint speaks OpenAI chat-completions, litellm everywhere else;
    - ``"litellm"``: litellm for everything;
    - ``"openai"``: the direct backend for everything (an endpoint the
      profiles do not know needs an ``api_base``).
    """
    if backend is None or backend == "auto":
        return AutoBackend(OpenAIBackend(), LiteLLMBackend())
    if backend == "litellm":
        return LiteLLMBackend()
    if backend == "openai":
        return OpenAIBackend()
    if isinstance(backend, str):
        raise ValueError(
            f"backend must be one of {', '.join(BACKENDS)} or a Backend, not {backend!r}"
        )
    return backend


def uses_litellm(backend: BackendName, model: str, api_base: str | None) -> bool:
    """Whether a request for ``model`` at ``api_base`` goes through litellm with ``backend``
    (an application loading litellm ahead of its first call asks this)."""
    if backend == "auto":
        return resolve(model, api_base).chat_completions is None
    return backend == "litellm"


def default_pipeline(
    *,
    backend: Backend | BackendName | None = None,
    fallbacks: Sequence[Target | Mapping[str, Any]] = (),
    fallback_policy: FallbackPolicy | None = None,
    **options: Any,
) -> Pipeline:
    """fallback(normalize -> cache_tag -> retry(tool_compat(dispatch) -> reassemble -> usage
    -> empty_check)).

    ``backend`` is what dispatch sends through (``make_backend``: by name, or
    a ``Backend``; default ``"auto"``), with simulated streaming where a
    request's profile asks for it; ``"auto"`` routes each request, so a
    fallback target on another provider goes through the backend its
    profile needs. ``fallbacks`` are the targets every call moves on to
    (validated here, naming ``fallbacks[i].field``), by ``fallback_policy``'s
    rules; the fallback segment wraps normalize and cache_tag too, since they
    shape the request for one provider. ``options`` are ``Pipeline``'s
    keyword options; token estimates default to litellm's counter once
    litellm is loaded (off the event loop, offline), else characters / 4.
    """
    options.setdefault("count_tokens", count_request_tokens)
    options.setdefault("instrument", TelemetryInstrument())  # spans only once an SDK is set up
    sender = simulated(make_backend(backend))
    call = retry(tool_compat(dispatch(sender)), reassemble(), usage(), empty_check())
    targets = coerce_targets("fallbacks", fallbacks)
    return Pipeline(
        [fallback(normalize(), cache_tag(), call, targets=targets, policy=fallback_policy)],
        **options,
    )
