"""A normalized ``Request`` as litellm takes it: the model string and the keyword arguments.

- ``litellm.acompletion(stream=True, stream_options={"include_usage": True},
  max_retries=0)``: litellm's own retries are off, retrying is the pipeline's
  job, once; the profile's ``drop_params`` / ``extra_params`` apply;
- the model string names the litellm provider that speaks the profile's
  ``api`` (``litellm_model``): ``kimi/x`` goes as ``anthropic/x`` (Kimi for
  Coding speaks Anthropic's API), ``ollama/x`` as ``ollama_chat/x``
  (litellm's ``ollama/`` is the completion endpoint), and a bare name for an
  OpenAI-compatible server as ``openai/<name>`` (the server still sees
  ``<name>``), with a placeholder key when none is given.
"""

from __future__ import annotations

import os
from typing import Any

from pipeline.profiles import DEFAULT, Api, Profile
from pipeline.request import Request
from stages.dispatch.litellm.loader import litellm_providers

__all__ = ["NO_KEY", "ROUTES", "build_kwargs", "litellm_model"]

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
    elif model != req.model and profile.api == "openai":
        # as the openai SDK does: OPENAI_API_KEY if set, else no key (a placeholder)
        kwargs["api_key"] = os.environ.get("OPENAI_API_KEY") or NO_KEY
    if req.api_base:
        kwargs["api_base"] = req.api_base
    for name in profile.drop_params:
        kwargs.pop(name, None)
    return kwargs


#: the litellm provider that speaks each API a profile may name (``Profile.api``)
ROUTES: dict[Api, str] = {"anthropic": "anthropic", "ollama": "ollama_chat", "openai": "openai"}


def litellm_model(model: str, profile: Profile = DEFAULT) -> str:
    """The model string litellm needs for the profile's ``api``.

    The profile's own prefix (``kimi/``, ``ollama/``) becomes the litellm
    provider speaking that API; a provider prefix litellm knows stays as it
    is; any other name (``any-model``, ``meta-llama/Llama-3.1-8B``: litellm
    knows no provider "meta-llama") gets the provider prepended. With no
    ``api``, ``model`` is unchanged.
    """
    if profile.api is None:
        return model
    route = ROUTES[profile.api]
    prefix, slash, rest = model.partition("/")
    if slash and f"{prefix.lower()}/" in profile.prefixes:
        return f"{route}/{rest}"
    if slash and prefix.lower() in litellm_providers():
        return model
    return f"{route}/{model}"
