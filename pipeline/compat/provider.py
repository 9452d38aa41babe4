"""``LiteLLMProvider``: the reference provider's interface, running on the pipeline.

Every call goes through one ``Pipeline`` per provider instance (built once,
so the rate-limit gate and the tool-compat model memory are shared by its
calls): its profiles, retries, reassembly and telemetry. This module only
translates: the reference's arguments into a ``Request``, the pipeline's
``Response`` and events into the reference's shapes, and failures of
``stream`` into a final ``StreamErrorEvent``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pipeline.compat.events import LLMResponse, StreamEvent
from pipeline.compat.helpers import (
    ToolLike,
    as_tool_spec,
    parse_tool_call_arguments,
    tool_to_openai_format,
)
from pipeline.compat.translate import EventTranslator, to_llm_response
from pipeline.errors import InvalidRequest
from pipeline.pipeline import Pipeline
from pipeline.profiles import Profile, api_base_for, resolve
from pipeline.request import Request, ToolSpec

__all__ = ["LiteLLMProvider"]

Tools = Sequence[ToolLike | ToolSpec | Mapping[str, Any]] | None

#: constructor keywords the reference sent along to litellm that cannot go to every call
_REFUSED = {
    "messages": "pass the messages to each call",
    "stream": "stream() streams and complete() collects; the pipeline decides how to dispatch",
    "stream_options": "the pipeline asks for usage itself",
}
#: constructor keywords that set litellm's own retries: here, the per-call default
_RETRY_KEYWORDS = ("max_retries", "num_retries")


class LiteLLMProvider:
    """A drop-in for the reference framework's ``LiteLLMProvider``.

    ``model``, ``api_key`` and ``api_base`` are read as the reference read
    them: ``kimi/x`` reads ``anthropic/x`` with Kimi's ``/coding`` base,
    MiniMax and OpenRouter get their bases unless one is given, any other
    model reads as given (``ollama/llama3``). No key is checked here: litellm finds
    it in the provider's environment variable at call time, as before.

    ``kwargs`` go to every call as ``Request.extra`` (``temperature``,
    ``top_p``, ``timeout``, ...), except ``max_tokens`` (wins over the
    per-call value, as in the reference), ``response_format`` and ``tools``
    (used when a call gives none), and ``max_retries`` / ``num_retries`` (the
    default for each call's ``max_retries``: the pipeline is the only retry
    layer). ``messages``, ``stream`` and ``stream_options`` are refused.

    ``pipeline`` (keyword only) is a testing hook: the pipeline to run on
    instead of ``Pipeline.default()``, e.g. one with ``testing.FakeClock``'s
    sleep, a scripted dispatch, or another ``RetryPolicy``.
    """

    def __init__(
        self,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        api_base: str | None = None,
        *,
        pipeline: Pipeline | None = None,
        **kwargs: Any,
    ) -> None:
        for key, why in _REFUSED.items():
            if key in kwargs:
                raise InvalidRequest(key, f"is not a provider option: {why}")
        profile = resolve(model, api_base)
        self.model, self.api_base = (
            _reference_model(model, profile),
            api_base_for(profile, api_base),
        )
        self.api_key = api_key
        self.extra_kwargs: dict[str, Any] = kwargs
        self._pipeline = pipeline if pipeline is not None else Pipeline.default()

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        return f"LiteLLMProvider(model={self.model!r}, api_base={self.api_base!r}, api_key={key})"

    # --- the reference's calls ------------------------------------------------------

    def complete(
        self,
        messages: list[dict[str, Any]],
        system: str = "",
        tools: Tools = None,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        max_retries: int | None = None,
    ) -> LLMResponse:
        """The whole answer, blocking; works inside a running event loop too."""
        request = self._request(messages, system, tools, max_tokens, response_format, json_mode)
        resp = self._pipeline_for(max_retries).complete(request)
        return to_llm_response(resp, self.model)

    async def acomplete(
        self,
        messages: list[dict[str, Any]],
        system: str = "",
        tools: Tools = None,
        max_tokens: int = 1024,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
        max_retries: int | None = None,
    ) -> LLMResponse:
        """The whole answer; awaits the pipeline on the caller's loop, never blocking it."""
        request = self._request(messages, system, tools, max_tokens, response_format, json_mode)
        resp = await self._pipeline_for(max_retries).acomplete(request)
        return to_llm_response(resp, self.model)

    async def stream(
        self,
        messages: list[dict[str, Any]],
        system: str = "",
        tools: Tools = None,
        max_tokens: int = 4096,
        response_format: dict[str, Any] | None = None,
        json_mode: bool = False,
    ) -> AsyncIterator[StreamEvent]:
        """The reference's events as the answer streams; never raises for a failed
        call: the last event is then a ``StreamErrorEvent``.

        Closing the generator early (``break``, cancellation) closes the
        pipeline and its HTTP response.
        """
        translator = EventTranslator(self.model, self.api_key)
        failure: Exception | None = None
        try:
            request = self._request(messages, system, tools, max_tokens, response_format, json_mode)
            async with self._pipeline_for(None).stream(request) as events:
                async for ev in events:
                    for out in translator.feed(ev):
                        yield out
        except Exception as exc:  # every failure is an event here; cancellation is not caught
            failure = exc
        if failure is not None:
            yield translator.fail(failure)

    # --- the reference's helper methods ------------------------------------------------

    def _tool_to_openai_format(self, tool: ToolLike | ToolSpec) -> dict[str, Any]:
        return tool_to_openai_format(tool)

    def _parse_tool_call_arguments(self, raw_arguments: str, tool_name: str) -> dict[str, Any]:
        return parse_tool_call_arguments(raw_arguments, tool_name)

    def _is_minimax_model(self) -> bool:
        return resolve(self.model, self.api_base).name == "minimax"

    @property
    def _codex_backend(self) -> bool:
        return resolve(self.model, self.api_base).name == "codex"

    # --- translation ---------------------------------------------------------------------

    def _request(
        self,
        messages: list[dict[str, Any]],
        system: str,
        tools: Tools,
        max_tokens: int,
        response_format: dict[str, Any] | None,
        json_mode: bool,
    ) -> Request:
        extra = dict(self.extra_kwargs)
        max_tokens = extra.pop("max_tokens", max_tokens)
        default_format = extra.pop("response_format", None)
        default_tools = extra.pop("tools", None)
        for key in _RETRY_KEYWORDS:
            extra.pop(key, None)
        return Request(
            model=self.model,
            messages=list(messages),
            system=system or None,
            # Request takes OpenAI-format tool dicts too, and validates them
            tools=[as_tool_spec(t) for t in tools] if tools else default_tools,  # type: ignore[misc]
            max_tokens=max_tokens,
            response_format=response_format or default_format,
            json_mode=json_mode,
            api_key=self.api_key or None,
            api_base=self.api_base or None,
            extra=extra,
        )

    def _pipeline_for(self, max_retries: int | None) -> Pipeline:
        """The instance's pipeline, with every retry budget capped at ``max_retries``."""
        if max_retries is None:
            max_retries = next(
                (self.extra_kwargs[k] for k in _RETRY_KEYWORDS if k in self.extra_kwargs), None
            )
            if max_retries is None:
                return self._pipeline
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidRequest("max_retries", f"must be an integer >= 0, got {max_retries!r}")
        policy = self._pipeline.policy
        return self._pipeline.with_options(
            policy=dataclasses.replace(
                policy,
                rate_limit_retries=max_retries,
                empty_retries=max_retries,
                transient_retries=min(max_retries, policy.transient_retries),
            )
        )


def _reference_model(model: str, profile: Profile) -> str:
    """The model as the reference's constructor read it: a model of a provider that
    speaks Anthropic's API under its own prefix (``kimi/x``) as ``anthropic/x``;
    every other model as given (``ollama/llama3`` stays ``ollama/llama3``)."""
    prefix, slash, rest = model.partition("/")
    if profile.api == "anthropic" and slash and f"{prefix.lower()}/" in profile.prefixes:
        return f"anthropic/{rest}"
    return model
