"""A normalized ``Request`` as the HTTP request an OpenAI chat-completions endpoint takes.

``outgoing(request, profile, stream=...)`` is pure (it reads the environment
for a key or a base URL the request does not give, as the provider's SDK
would). It sends what the litellm backend sends for the same request:

- ``POST {base}/chat/completions``: the request's ``api_base``, else the
  profile's endpoint (``Profile.chat_completions``);
- the model without the prefix that names the provider for litellm
  (``openai/gpt-4o`` goes as ``gpt-4o``); ``stream: true`` with
  ``stream_options.include_usage``; ``max_tokens``, ``tools`` (OpenAI
  function format), ``response_format``; the profile's ``extra_params`` and
  ``drop_params``;
- ``Request.extra`` as body fields, except ``extra_headers`` / ``headers``
  (HTTP headers), ``extra_body`` (merged into the body) and the parameters
  only litellm understands (``LITELLM_ONLY``: ``timeout``, ``metadata``, ...),
  which are not sent;
- the key only as ``Authorization: Bearer``: the request's, else the
  provider's variable; where the provider needs one and there is none,
  ``AuthenticationFailed`` before anything is sent.

A request arrives here validated; if a stage forced a bad value in after
that (a key with CR/LF, NaN in ``extra``, a lone surrogate, a URL without a
host), building it fails with ``InvalidRequest`` ("could not be built"),
never retried, and nothing is sent. The key, the base URL and ``extra``
are checked again here, since they are what such a value would slip into
unnoticed (msgspec would send NaN as ``null`` and a set as a list); the
messages are not walked again (that costs more than the rest of the call):
what cannot be encoded there fails the encoding.

``Outgoing`` keeps the key out of its ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from pipeline import validate
from pipeline.errors import AuthenticationFailed, InvalidRequest
from pipeline.profiles import ChatCompletions, Profile
from pipeline.request import Request
from pipeline.secrets import stand_in

__all__ = ["ANY_ENDPOINT", "LITELLM_ONLY", "Outgoing", "outgoing"]

#: what the direct backend assumes of a profile that names no endpoint (a
#: caller forcing ``backend="openai"``): an OpenAI-compatible server at the
#: request's ``api_base``, which must then be given
ANY_ENDPOINT = ChatCompletions(key_required=False)

#: ``Request.extra`` keys that are litellm's own options, not the provider's
LITELLM_ONLY = frozenset(
    {
        "timeout",
        "metadata",
        "drop_params",
        "custom_llm_provider",
        "api_version",
        "mock_response",
        "caching",
        "fallbacks",
        "litellm_logging_obj",
    }
)
_HEADER_KEYS = ("extra_headers", "headers")

_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One HTTP request: where, with which headers, which body."""

    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: bytes = field(repr=False)
    provider: str = "openai"


def outgoing(req: Request, profile: Profile, *, stream: bool = True) -> Outgoing:
    """The HTTP request for ``req``, as ``profile``'s endpoint takes it."""
    try:
        return _outgoing(req, profile, stream)
    except InvalidRequest as exc:
        problem = exc.problem
        field_name = exc.field
        cause: BaseException | None = None
    except (ValueError, TypeError, UnicodeError, RecursionError, OverflowError) as exc:
        problem, field_name, cause = f"{type(exc).__name__}: {exc}", "the request body", exc
    error = InvalidRequest(field_name, f"the request could not be built for sending: {problem}")
    if cause is not None:
        error.__cause__ = stand_in(cause, req.api_key)
    raise error


def _outgoing(req: Request, profile: Profile, stream: bool) -> Outgoing:
    route = profile.chat_completions or ANY_ENDPOINT
    own_base = _env_base(route) or route.base
    base = req.api_base or own_base
    if not base:
        raise InvalidRequest(
            "api_base",
            f"{req.model!r}: the direct backend needs the endpoint's base URL"
            " (e.g. http://127.0.0.1:8000/v1); this provider has none of its own",
        )
    headers: dict[str, str] = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
    }
    validate.check_api_base(base)
    key = req.api_key or (os.environ.get(route.key_env) if route.key_env else None)
    validate.check_api_key(key)
    validate.check_json("extra", req.extra)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    elif route.key_required:
        where = f" or set {route.key_env}" if route.key_env else ""
        raise AuthenticationFailed(
            f"Missing credentials: no API key for {req.model!r} (pass api_key{where})",
            provider=route.provider,
        )
    body: dict[str, Any] = dict(profile.extra_params)
    for name, value in req.extra.items():
        if name in _HEADER_KEYS:
            headers.update(value or {})
        elif name == "extra_body":
            body.update(value or {})
        elif name not in LITELLM_ONLY:
            body[name] = value
    body["model"] = _model(req.model, route)
    body["messages"] = req.messages
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    if req.max_tokens is not None:
        to_own = req.api_base is None or req.api_base == own_base
        body[route.max_tokens_field if to_own else "max_tokens"] = req.max_tokens
    if req.tools:
        body["tools"] = [t.to_openai() for t in req.tools]
    if req.response_format is not None:
        body["response_format"] = req.response_format
    for name in profile.drop_params:
        body.pop(name, None)
    return Outgoing(
        url=base.rstrip("/") + "/chat/completions",
        headers=headers,
        body=_encoder.encode(body),
        provider=route.provider,
    )


def _model(model: str, route: ChatCompletions) -> str:
    prefix = route.strip_prefix
    if prefix and model[: len(prefix)].lower() == prefix:
        return model[len(prefix) :]
    return model


def _env_base(route: ChatCompletions) -> str | None:
    for name in route.base_env:
        value = os.environ.get(name)
        if value:
            return value
    return None
