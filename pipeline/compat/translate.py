"""Pipeline events in, the reference's stream events out: pure, synchronous, no event loop.

The pipeline's order is ``TextDelta``/``ReasoningDelta`` as they arrive, then
``TextEnd``, the ``ToolCall``s and ``Finish``. The reference's is the same
except that its ``TextEndEvent`` comes after the tool calls, just before
``FinishEvent``; so ``TextEnd`` is held back until ``Finish``. A failure drops
it (the reference never ends the text of a failed stream) and becomes the
last event, a ``StreamErrorEvent``.

The snapshot (all text so far) on every ``TextDeltaEvent`` is the reference's
contract, kept here at the edge: the pipeline's own events never carry it.
"""

from __future__ import annotations

from pipeline.compat.events import (
    FinishEvent,
    LLMResponse,
    ReasoningDeltaEvent,
    ReasoningStartEvent,
    StreamErrorEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEndEvent,
    ToolCallEvent,
)
from pipeline.compat.helpers import error_text, is_recoverable
from pipeline.events import Event, Finish, ReasoningDelta, TextDelta, TextEnd, ToolCall
from pipeline.response import Response

__all__ = ["EventTranslator", "to_llm_response"]

_NONE: tuple[StreamEvent, ...] = ()


class EventTranslator:
    """``feed(event)`` returns the reference events it becomes; ``fail(exc)`` the final error.

    ``model`` names the configured model, for a ``Finish`` without one.
    """

    __slots__ = ("_api_key", "_model", "_reasoning", "_snapshot", "_text_end")

    def __init__(self, model: str, api_key: str | None = None) -> None:
        self._model = model
        self._api_key = api_key
        self._snapshot = ""
        self._reasoning = False
        self._text_end: TextEndEvent | None = None

    def feed(self, ev: Event) -> tuple[StreamEvent, ...]:
        if isinstance(ev, TextDelta):
            self._snapshot += ev.text
            return (TextDeltaEvent(content=ev.text, snapshot=self._snapshot),)
        if isinstance(ev, ReasoningDelta):
            delta = ReasoningDeltaEvent(content=ev.text)
            if self._reasoning:
                return (delta,)
            self._reasoning = True
            return (ReasoningStartEvent(), delta)
        if isinstance(ev, ToolCall):
            return (
                ToolCallEvent(tool_use_id=ev.id, tool_name=ev.name, tool_input=dict(ev.arguments)),
            )
        if isinstance(ev, TextEnd):
            self._text_end = TextEndEvent(full_text=ev.text)
            return _NONE
        if isinstance(ev, Finish):
            finish = FinishEvent(
                stop_reason=ev.stop_reason,
                input_tokens=ev.input_tokens,
                output_tokens=ev.output_tokens,
                cached_tokens=ev.cached_tokens,
                model=ev.model or self._model,
            )
            end, self._text_end = self._text_end, None
            return (finish,) if end is None else (end, finish)
        return _NONE  # Retrying and the pipeline's internal events have no counterpart

    def fail(self, exc: BaseException) -> StreamErrorEvent:
        self._text_end = None
        return StreamErrorEvent(
            error=error_text(exc, self._api_key), recoverable=is_recoverable(exc)
        )


def to_llm_response(resp: Response, model: str) -> LLMResponse:
    """The reference's ``LLMResponse`` for a pipeline ``Response``; ``raw_response``
    is the ``Response`` itself (tool calls, reasoning, usage source, retries)."""
    return LLMResponse(
        content=resp.text,
        model=resp.model or model,
        input_tokens=resp.usage.input_tokens,
        output_tokens=resp.usage.output_tokens,
        stop_reason=resp.stop_reason,
        raw_response=resp,
    )
