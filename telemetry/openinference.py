"""The OpenInference attributes of one call, beside the GenAI ones: pure functions.

Names come from ``openinference-semantic-conventions``. The root span is an
``LLM`` span (model, provider, system, invocation parameters, token counts);
stage and attempt spans are ``CHAIN`` spans. What carries message content
(``input.value``, ``output.value``, ``llm.input_messages``,
``llm.output_messages``, ``llm.tools``) is built only when the caller opted
in to content capture, like the GenAI content attributes. The API key is
never read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from openinference.semconv.trace import MessageAttributes as M
from openinference.semconv.trace import OpenInferenceLLMProviderValues as Provider
from openinference.semconv.trace import OpenInferenceLLMSystemValues as System
from openinference.semconv.trace import OpenInferenceMimeTypeValues as Mime
from openinference.semconv.trace import OpenInferenceSpanKindValues as Kind
from openinference.semconv.trace import SpanAttributes as S
from openinference.semconv.trace import ToolAttributes, ToolCallAttributes

from pipeline.events import Finish, ToolCall
from pipeline.request import Request

__all__ = ["CHAIN", "KIND", "input_content", "output_content", "request", "response"]

KIND = S.OPENINFERENCE_SPAN_KIND
#: the kind of every stage and attempt span
CHAIN = Kind.CHAIN.value

#: ``gen_ai.provider.name`` -> OpenInference's provider and system names
_PROVIDERS: Mapping[str, str] = {
    "azure.ai.openai": Provider.AZURE.value,
    "azure.ai.inference": Provider.AZURE.value,
    "gcp.gemini": Provider.GOOGLE.value,
    "gcp.vertex_ai": Provider.GOOGLE.value,
    "aws.bedrock": Provider.AWS.value,
    "mistral_ai": Provider.MISTRALAI.value,
    "x_ai": Provider.XAI.value,
}
_SYSTEMS: Mapping[str, str] = {
    "openai": System.OPENAI.value,
    "azure.ai.openai": System.OPENAI.value,
    "anthropic": System.ANTHROPIC.value,
    "cohere": System.COHERE.value,
    "mistral_ai": System.MISTRALAI.value,
    "gcp.vertex_ai": System.VERTEXAI.value,
}
#: request parameters that are settings, never content
_PARAMETERS = (
    "temperature",
    "top_p",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "parallel_tool_calls",
    "reasoning_effort",
    "n",
)


def request(req: Request, model: str, provider: str) -> dict[str, Any]:
    """The root's attributes known when the call starts (``model``, ``provider``: GenAI's)."""
    params: dict[str, Any] = {"stream": True}
    if req.max_tokens is not None:
        params["max_tokens"] = req.max_tokens
    for key in _PARAMETERS:
        value = req.extra.get(key)
        if isinstance(value, bool | int | float | str):
            params[key] = value
    if req.json_mode:
        params["response_format"] = {"type": "json_object"}
    elif req.response_format is not None:
        params["response_format"] = {"type": req.response_format.get("type")}
    attrs: dict[str, Any] = {
        KIND: Kind.LLM.value,
        S.LLM_MODEL_NAME: model,
        S.LLM_PROVIDER: _PROVIDERS.get(provider, provider),
        S.LLM_INVOCATION_PARAMETERS: json.dumps(params, sort_keys=True),
    }
    system = _SYSTEMS.get(provider)
    if system is not None:
        attrs[S.LLM_SYSTEM] = system
    return attrs


def response(finish: Finish) -> dict[str, Any]:
    """The root's attributes from the answer's ``Finish``: the model that answered, tokens."""
    attrs: dict[str, Any] = {}
    if finish.model:
        attrs[S.LLM_MODEL_NAME] = finish.model
    if finish.usage_source != "none":
        attrs[S.LLM_TOKEN_COUNT_PROMPT] = finish.input_tokens
        attrs[S.LLM_TOKEN_COUNT_COMPLETION] = finish.output_tokens
        attrs[S.LLM_TOKEN_COUNT_TOTAL] = finish.input_tokens + finish.output_tokens
        attrs[S.LLM_TOKEN_COUNT_PROMPT_DETAILS_CACHE_READ] = finish.cached_tokens
    return attrs


def _text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts = [p["text"] for p in content if isinstance(p, Mapping) and "text" in p]
        return "".join(str(t) for t in texts) if texts else None
    return None


def _calls(prefix: str, calls: Sequence[tuple[Any, Any, Any]], attrs: dict[str, Any]) -> None:
    for j, (call_id, name, arguments) in enumerate(calls):
        at = f"{prefix}.{M.MESSAGE_TOOL_CALLS}.{j}."
        if call_id is not None:
            attrs[at + ToolCallAttributes.TOOL_CALL_ID] = str(call_id)
        attrs[at + ToolCallAttributes.TOOL_CALL_FUNCTION_NAME] = str(name)
        attrs[at + ToolCallAttributes.TOOL_CALL_FUNCTION_ARGUMENTS_JSON] = (
            arguments if isinstance(arguments, str) else json.dumps(arguments, default=str)
        )


def input_content(req: Request) -> dict[str, Any]:
    """``input.value`` and ``llm.input_messages`` (and ``llm.tools``), for opt-in capture."""
    messages: list[Mapping[str, Any]] = list(req.messages)
    if req.system:
        messages.insert(0, {"role": "system", "content": req.system})
    attrs: dict[str, Any] = {
        S.INPUT_VALUE: json.dumps({"messages": messages}, default=str),
        S.INPUT_MIME_TYPE: Mime.JSON.value,
    }
    for i, msg in enumerate(messages):
        prefix = f"{S.LLM_INPUT_MESSAGES}.{i}"
        attrs[f"{prefix}.{M.MESSAGE_ROLE}"] = str(msg.get("role", "user"))
        text = _text(msg.get("content"))
        if text is not None:
            attrs[f"{prefix}.{M.MESSAGE_CONTENT}"] = text
        if msg.get("tool_call_id") is not None:
            attrs[f"{prefix}.{M.MESSAGE_TOOL_CALL_ID}"] = str(msg["tool_call_id"])
        calls = []
        for call in msg.get("tool_calls") or ():
            fn = call.get("function", {}) if isinstance(call, Mapping) else {}
            calls.append((call.get("id"), fn.get("name"), fn.get("arguments")))
        _calls(prefix, calls, attrs)
    for i, tool in enumerate(req.tools or ()):
        schema = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
        attrs[f"{S.LLM_TOOLS}.{i}.{ToolAttributes.TOOL_JSON_SCHEMA}"] = json.dumps(schema)
    return attrs


def output_content(text: str, calls: Sequence[ToolCall]) -> dict[str, Any]:
    """``output.value`` and ``llm.output_messages``, for opt-in capture."""
    prefix = f"{S.LLM_OUTPUT_MESSAGES}.0"
    attrs: dict[str, Any] = {
        S.OUTPUT_VALUE: text,
        S.OUTPUT_MIME_TYPE: Mime.TEXT.value,
        f"{prefix}.{M.MESSAGE_ROLE}": "assistant",
    }
    if text:
        attrs[f"{prefix}.{M.MESSAGE_CONTENT}"] = text
    _calls(prefix, [(c.id, c.name, c.arguments) for c in calls], attrs)
    return attrs
