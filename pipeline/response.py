"""A whole answer, ``Response``; the one fold of events into it; the messages after it.

``ResponseBuilder`` is how every consumer that needs the answer so far
folds the events (``collect``, the retry segment's partial output, the
batch runner, the CLI, telemetry's captured output): ``feed`` each event,
read what was delivered at any point, ``build()`` the ``Response``.

An agent loop sends the conversation, runs the tools the model called, and
sends it again with two more kinds of message: the model's own turn
(``Response.to_message()``) and one result per tool call
(``tool_result(call, value)``). Both come out as OpenAI-format dicts, the
shape ``Request.messages`` takes for every provider.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pipeline.events import (
    Event,
    Finish,
    ReasoningDelta,
    Retrying,
    TextDelta,
    ToolCall,
    UsageSource,
)
from pipeline.pieces import Pieces
from pipeline.request import openai_tool_calls

__all__ = ["Response", "ResponseBuilder", "Usage", "tool_result"]


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """Token counts of one call, where they come from, and what the call cost.

    ``cost_usd`` is priced from LiteLLM's table (``pipeline.cost``); ``None``
    when the model's price is unknown.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    source: UsageSource = "none"
    cost_usd: float | None = None


class Response(msgspec.Struct, frozen=True, kw_only=True):
    """A whole answer: what ``acomplete`` / ``complete`` / ``collect`` return."""

    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str = ""
    usage: Usage = Usage()
    model: str = ""
    reasoning: str = ""
    retries: int = 0

    def to_message(self) -> dict[str, Any]:
        """This answer as the assistant message to append to the conversation.

        ``content`` is the text, or ``None`` when the answer is tool calls
        only; ``tool_calls`` are in the OpenAI format, arguments as JSON
        text. The reasoning, when there was any, goes along as
        ``reasoning_content``: thinking models that call tools (DeepSeek,
        Moonshot/Kimi) must get it back on the next turn, and the pipeline
        strips it for every other provider (``Profile.echo_reasoning``), so
        one history can be sent anywhere.
        """
        msg: dict[str, Any] = {
            "role": "assistant",
            "content": self.text if self.text or not self.tool_calls else None,
        }
        if self.tool_calls:
            msg["tool_calls"] = openai_tool_calls("tool_calls", self.tool_calls)
        if self.reasoning:
            msg["reasoning_content"] = self.reasoning
        return msg


class ResponseBuilder:
    """Events in, one ``Response`` out: the fold every consumer of answers shares.

    ``feed`` takes every event of a run, in order (any event; those that are
    not part of the answer are ignored). At any point, ``text``,
    ``reasoning`` and ``tool_calls`` are what was delivered so far,
    ``delivered`` says whether any of it was (text, reasoning or a tool call:
    what a consumer may already have shown or acted on), ``finish`` is the
    ``Finish`` once it came, and ``retries`` counts ``Retrying`` events.
    ``build()`` is the ``Response``. Text is kept as ``Pieces`` and joined
    when read, so feeding costs the same for every delta, and a long stream
    holds its characters, not an object per delta.
    """

    __slots__ = ("_reasoning", "_text", "delivered", "finish", "retries", "tool_calls")

    def __init__(self) -> None:
        self._text = Pieces()
        self._reasoning = Pieces()
        self.tool_calls: list[ToolCall] = []
        self.finish: Finish | None = None
        self.retries = 0
        self.delivered = False

    def feed(self, ev: Event) -> None:
        kind = type(ev)
        if kind is TextDelta:
            self._text.append(ev.text)  # type: ignore[union-attr]
            self.delivered = True
        elif kind is ToolCall:
            self.tool_calls.append(ev)  # type: ignore[arg-type]
            self.delivered = True
        elif kind is ReasoningDelta:
            self._reasoning.append(ev.text)  # type: ignore[union-attr]
            self.delivered = True
        elif kind is Finish:
            self.finish = ev  # type: ignore[assignment]
        elif kind is Retrying:
            self.retries += 1

    @property
    def text(self) -> str:
        return str(self._text)

    @property
    def reasoning(self) -> str:
        return str(self._reasoning)

    def build(self) -> Response:
        """The answer so far as a ``Response`` (usage and stop reason from ``Finish``)."""
        finish = self.finish
        if finish is None:
            return Response(
                text=self.text, tool_calls=tuple(self.tool_calls), reasoning=self.reasoning
            )
        return Response(
            text=self.text,
            tool_calls=tuple(self.tool_calls),
            stop_reason=finish.stop_reason,
            usage=Usage(
                input_tokens=finish.input_tokens,
                output_tokens=finish.output_tokens,
                cached_tokens=finish.cached_tokens,
                source=finish.usage_source,
                cost_usd=finish.cost_usd,
            ),
            model=finish.model,
            reasoning=self.reasoning,
            retries=self.retries,
        )


_json = msgspec.json.Encoder()


def tool_result(call: ToolCall | str, content: object) -> dict[str, Any]:
    """The tool message answering ``call`` (a ``ToolCall``, or its id).

    A ``str`` is sent as it is; any other value is encoded as JSON once
    (dicts, lists, numbers, ``None``, dataclasses, msgspec Structs,
    datetimes, ...). A value JSON cannot represent raises ``TypeError``
    naming the call, before anything is sent.
    """
    if isinstance(call, ToolCall):
        call_id, name = call.id, call.name
    elif isinstance(call, str):
        call_id, name = call, call
    else:
        raise TypeError(f"tool_result() takes a ToolCall or its id, got {type(call).__name__}")
    if isinstance(content, str):
        text = content
    elif isinstance(content, bytes | bytearray | memoryview):
        raise TypeError(f"the result of tool call {name!r} is bytes: decode it to text first")
    else:
        try:
            text = _json.encode(content).decode()
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"the result of tool call {name!r} is not JSON-serialisable"
                f" ({type(content).__name__}): {exc}; pass a str or a JSON value"
            ) from exc
    return {"role": "tool", "tool_call_id": call_id, "content": text}
