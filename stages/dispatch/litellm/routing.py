"""A normalized ``Request`` as litellm takes it: the model string and the keyword arguments.

- ``litellm.acompletion(stream=True, stream_options={"include_usage": True},
  max_retries=0)``: litellm's own retries are off, retrying is the pipeline's
  job, once; the profile's ``drop_params`` / ``extra_params`` apply;
- a bare model name for an OpenAI-compatible server (the profile's
  ``bare_model_provider``) goes to litellm as ``openai/<model>``, with a
  placeholder key when none is given.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.profiles import DEFAULT, Profile
from pipeline.request import Request
from stages.dispatch.litellm.loader import litellm_providers

__all__ = ["NO_KEY", "build_kwargs", "litellm_model"]

#: sent as the key to an OpenAI-compatible server when none is given: the
#: OpenAI client refuses to send a request without one, and servers without
#: authentication ignore it. Plainly not a key, in a log or a server's.
NO_KEY = "no-key"


def build_kwargs(req: Request, profile: Profile = DEFAULT) -> dict[str, Any]:
    """The keyword arguments of ``litellm.acompletion`` for a normalized request."""
    model = litellm_model(req.model, profile)
    kwargs: dict[str, Any] = {
        **profile.extra_params,
        **req.extra,
        "model": model,
        "messages": req.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_retries": 0,
    }
    if req.max_tokens is not None:
        kwargs["max_tokens"] = req.max_tokens
    if req.tools:
        kwargs["tools"] = [t.to_openai() for t in req.tools]
    if req.response_format is not None:
        kwargs["response_format"] = req.response_format
    if req.api_key:
        kwargs["api_key"] = req.api_key
    elif model != req.model and profile.bare_model_provider == "openai":
        # as the openai SDK does: OPENAI_API_KEY if set, else no key (a placeholder)
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY") or NO_KEY
    if req.api_base:
        kwargs["api_base"] = req.api_base
    for name in profile.drop_params:
        kwargs.pop(name, None)
    return kwargs


def litellm_model(model: str, profile: Profile = DEFAULT) -> str:
    """The model string litellm needs: ``openai/<model>`` for a bare name sent to an
    OpenAI-compatible server (``meta-llama/Llama-3.1-8B`` is bare too: litellm knows
    no provider "meta-llama"), else ``model`` unchanged."""
    provider = profile.bare_model_provider
    if provider is None:
        return model
    prefix, slash, _ = model.partition("/")
    if slash and prefix.lower() in litellm_providers():
        return model
    return f"{provider}/{model}"
