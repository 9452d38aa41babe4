"""The OpenTelemetry GenAI semantic conventions for one call: pure functions.

Attribute names come from ``opentelemetry.semconv``; values from the request
the caller gave, its provider profile, and the events of the answer. Message
content is built only when the caller opted in; the API key is never read.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv.attributes import error_attributes, server_attributes

from pipeline.errors import redact
from pipeline.events import Finish, ToolCall
from pipeline.profiles import Profile
from pipeline.request import Request

__all__ = [
    "CAPTURE_ENV",
    "ERROR_TYPE",
    "OPERATION",
    "capture_enabled",
    "error_type",
    "exception_attributes",
    "input_content",
    "output_content",
    "provider_name",
    "request_attributes",
    "request_model",
    "request_span_attributes",
    "response_attributes",
    "scrub",
]

OPERATION = "chat"
CAPTURE_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_ON = frozenset({"true", "1", "yes", "on", "span_only", "span_and_event"})

#: litellm provider prefixes -> the conventions' well-known provider names
_PROVIDERS: Mapping[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai",
    "bedrock": "aws.bedrock",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "watsonx": "ibm.watsonx.ai",
    "perplexity": "perplexity",
    "xai": "x_ai",
    "deepseek": "deepseek",
    "groq": "groq",
    "mistral": "mistral_ai",
}


def _split(model: str) -> tuple[str | None, str]:
    prefix, sep, rest = model.partition("/")
    return (prefix.lower(), rest) if sep and rest else (None, model)


def request_model(model: str) -> str:
    """The model name without litellm's provider prefix: ``openai/gpt-4o`` -> ``gpt-4o``."""
    return _split(model)[1]


def provider_name(model: str, profile: Profile) -> str:
    """``gen_ai.provider.name``: from the model prefix, else the profile, else openai
    (litellm sends a bare model name to OpenAI)."""
    prefix, _ = _split(model)
    name = prefix or (profile.name if profile.name != "default" else "openai")
    return _PROVIDERS.get(name, name)


def request_attributes(req: Request, profile: Profile) -> dict[str, Any]:
    """What is known when the call starts (low cardinality: also the metric attributes)."""
    attrs: dict[str, Any] = {
        ga.GEN_AI_OPERATION_NAME: OPERATION,
        ga.GEN_AI_PROVIDER_NAME: provider_name(req.model, profile),
        ga.GEN_AI_REQUEST_MODEL: request_model(req.model),
    }
    base = req.api_base or profile.default_api_base
    if base:
        try:
            parts = urlsplit(base)
            host, port = parts.hostname, parts.port  # never the userinfo part
        except ValueError:
            host, port = None, None
        if host:
            attrs[server_attributes.SERVER_ADDRESS] = host
            if port is not None:
                attrs[server_attributes.SERVER_PORT] = port
    return attrs


def request_span_attributes(req: Request) -> dict[str, Any]:
    """Request parameters that belong on the span only (not on metrics)."""
    attrs: dict[str, Any] = {ga.GEN_AI_REQUEST_STREAM: True}
    if req.max_tokens is not None:
        attrs[ga.GEN_AI_REQUEST_MAX_TOKENS] = req.max_tokens
    for key, name in (
        ("temperature", ga.GEN_AI_REQUEST_TEMPERATURE),
        ("top_p", ga.GEN_AI_REQUEST_TOP_P),
        ("seed", ga.GEN_AI_REQUEST_SEED),
    ):
        value = req.extra.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            attrs[name] = value
    if req.json_mode or req.response_format is not None:
        attrs[ga.GEN_AI_OUTPUT_TYPE] = "json"
    return attrs


def response_attributes(finish: Finish) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        ga.GEN_AI_RESPONSE_FINISH_REASONS: (finish.stop_reason,),
        "llmpipe.usage_source": finish.usage_source,
    }
    if finish.model:
        attrs[ga.GEN_AI_RESPONSE_MODEL] = finish.model
    if finish.usage_source != "none":
        attrs[ga.GEN_AI_USAGE_INPUT_TOKENS] = finish.input_tokens
        attrs[ga.GEN_AI_USAGE_OUTPUT_TOKENS] = finish.output_tokens
        attrs[ga.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = finish.cached_tokens
    if finish.cost_usd is not None:
        attrs["llmpipe.usage.cost_usd"] = finish.cost_usd
    return attrs


def error_type(exc: BaseException) -> str:
    """``error.type``: the exception's canonical class name (low cardinality)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


ERROR_TYPE = error_attributes.ERROR_TYPE


def scrub(text: str, secret: str | None) -> str:
    """``text`` with ``secret`` (the API key), and key-shaped strings, masked."""
    return redact(text, secret)


def exception_attributes(exc: BaseException, secret: str | None) -> dict[str, Any]:
    """The ``exception`` span event's attributes, with the API key masked."""
    stack = "".join(traceback.format_exception(exc))
    return {
        "exception.type": error_type(exc),
        "exception.message": scrub(str(exc), secret),
        "exception.stacktrace": scrub(stack, secret),
    }


def capture_enabled(setting: bool | None) -> bool:
    """Content capture: the explicit setting, else the conventions' variable."""
    if setting is not None:
        return setting
    return os.environ.get(CAPTURE_ENV, "").strip().lower() in _CAPTURE_ON


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append({"type": "text", "content": part["text"]})
            elif isinstance(part, Mapping):
                parts.append({"type": str(part.get("type", "unknown"))})
        return parts
    return []


def input_content(req: Request) -> dict[str, str]:
    """``gen_ai.system_instructions`` and ``gen_ai.input.messages`` (JSON), for opt-in capture."""
    messages = []
    for msg in req.messages:
        parts = _text_parts(msg.get("content"))
        for call in msg.get("tool_calls") or ():
            fn = call.get("function", {}) if isinstance(call, Mapping) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id") if isinstance(call, Mapping) else None,
                    "name": fn.get("name"),
                    "arguments": fn.get("arguments"),
                }
            )
        if msg.get("role") == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": msg.get("tool_call_id"),
                    "response": msg.get("content"),
                }
            ]
        messages.append({"role": str(msg.get("role", "user")), "parts": parts})
    attrs = {ga.GEN_AI_INPUT_MESSAGES: json.dumps(messages, default=str)}
    if req.system:
        attrs[ga.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps([{"type": "text", "content": req.system}])
    return attrs


def output_content(text: str, calls: Sequence[ToolCall], finish: Finish | None) -> dict[str, str]:
    """``gen_ai.output.messages`` (JSON), for opt-in capture."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    parts += [
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": c.arguments} for c in calls
    ]
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if finish is not None:
        message["finish_reason"] = finish.stop_reason
    return {ga.GEN_AI_OUTPUT_MESSAGES: json.dumps([message], default=str)}
