"""OpenAI chat-completions JSON as typed Structs, and as provider-neutral ``Chunk``s (pure).

msgspec decodes each streamed payload straight into the Structs below, which
name only the fields a ``Chunk`` needs: every other field (``obfuscation``,
``system_fingerprint``, ``x_groq``, ``logprobs``, ...) is skipped unread,
and a field of the wrong type (``content`` a number, ``choices`` a string)
is a ``MalformedResponse`` naming its path. Then:

- text is ``delta.content``: a string, or a list of typed parts (Mistral),
  whose ``text`` parts are text and whose ``thinking`` parts are reasoning;
- reasoning is ``delta.reasoning_content`` when it is a string, else
  ``delta.reasoning`` (Groq, OpenRouter); encrypted reasoning is not text;
- a refusal (``delta.refusal``, which OpenAI sends instead of content) is
  the answer's text: the model answered, and dropping it would make an
  empty answer that is retried for nothing;
- tool-call fragments are passed as sent (index, id, name, arguments), an
  empty id or name as none; which call a fragment belongs to is
  ``reassemble``'s business;
- ``usage`` is the provider's mapping, as sent; ``model`` the model the
  provider says answered.

A chunk that carries none of these (a role-only first delta, an empty
``choices`` list) becomes no ``Chunk``. An ``error`` object in a payload is
returned as such for ``errors.stream_error``. ``completion_chunks`` plays a
whole (non-streamed) ``chat.completion`` back as the chunks its stream
would have had.
"""

from __future__ import annotations

from typing import Any

import msgspec

from pipeline.errors import MalformedResponse, redact
from pipeline.events import Chunk, ToolFragment

__all__ = [
    "DECODE_ERRORS",
    "STREAM_DECODER",
    "Completion",
    "ErrorBody",
    "StreamChunk",
    "completion_chunks",
    "decode_completion",
    "decode_stream_chunk",
    "malformed",
    "stream_chunk",
]


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None


class _Part(msgspec.Struct):
    """One typed content part: ``{"type": "text", "text"}`` or
    ``{"type": "thinking", "thinking": "..." | [parts]}``."""

    type: str = ""
    text: str | None = None
    thinking: str | list[_Part] | None = None


class _Delta(msgspec.Struct):
    content: str | list[_Part] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class ErrorBody(msgspec.Struct):
    """A provider's error object: ``{"error": {"message", "type", "code"}}``."""

    message: str | None = None
    type: str | None = None
    code: str | int | None = None


class StreamChunk(msgspec.Struct):
    """One ``chat.completion.chunk`` (or an error event in its place)."""

    choices: list[_Choice] | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    error: ErrorBody | str | None = None


class _Message(msgspec.Struct):
    content: str | list[_Part] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    refusal: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _WholeChoice(msgspec.Struct):
    message: _Message | None = None
    finish_reason: str | None = None


class Completion(msgspec.Struct):
    """A whole ``chat.completion``, as a non-streamed call (or a server that
    ignored ``stream``) returns it. ``choices`` is ``None`` when the document
    had none: then it was not a completion at all."""

    choices: list[_WholeChoice] | None = None
    usage: dict[str, Any] | None = None
    model: str | None = None
    error: ErrorBody | str | None = None


#: decodes one streamed payload (``decode_stream_chunk``, or inline where it is hot)
STREAM_DECODER = msgspec.json.Decoder(StreamChunk)
#: what decoding raises for bytes that are not such a payload
DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_completion_decoder = msgspec.json.Decoder(Completion)


def decode_stream_chunk(payload: bytes) -> StreamChunk:
    """One SSE payload as a ``StreamChunk``; ``MalformedResponse`` when it cannot be."""
    try:
        return STREAM_DECODER.decode(payload)
    except DECODE_ERRORS:
        pass
    raise malformed(payload)


def malformed(
    payload: bytes, decoder: msgspec.json.Decoder[Any] = STREAM_DECODER
) -> MalformedResponse:
    """The error for a payload ``decoder`` cannot decode, saying why (it decodes again)."""
    try:
        decoder.decode(payload)
    except DECODE_ERRORS as exc:
        problem: BaseException = exc
    else:  # decodes after all: nothing to say but what it is
        return MalformedResponse(
            f"the provider sent a payload that cannot be read: {_short(payload)}"
        )
    return MalformedResponse(f"the provider sent {_what(problem)}: {_short(payload)}")


def decode_completion(body: bytes) -> Completion:
    """A JSON body as a ``Completion``; ``MalformedResponse`` when it cannot be."""
    try:
        return _completion_decoder.decode(body)
    except DECODE_ERRORS:
        pass
    raise malformed(body, _completion_decoder)


def _what(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return "bytes that are not UTF-8"
    if isinstance(exc, RecursionError):
        return "data nested too deeply"
    if isinstance(exc, msgspec.ValidationError):
        return f"fields of the wrong type ({exc})"
    return f"data that is not JSON ({exc})"


def _short(payload: bytes) -> str:
    return repr(redact(payload[:160]).decode("utf-8", "replace"))


def stream_chunk(raw: StreamChunk) -> Chunk | None:
    """The ``Chunk`` of one decoded stream chunk (``None``: it carries nothing)."""
    text = reasoning = ""
    fragments: tuple[ToolFragment, ...] = ()
    finish = None
    choices = raw.choices
    if choices:
        choice = choices[0]
        delta = choice.delta
        if delta is not None:
            content = delta.content
            if isinstance(content, str):
                text = content
            elif content:
                text, reasoning = _parts(content)
            thought = delta.reasoning_content
            if thought is None:
                thought = delta.reasoning
            if thought:
                reasoning += thought
            if delta.refusal:
                text += delta.refusal
            calls = delta.tool_calls
            if calls:
                if len(calls) == 1:  # the common case: one fragment of one call
                    call = calls[0]
                    fragments = (_fragment(call, call.index),)
                else:
                    fragments = tuple(_fragment(tc, tc.index) for tc in calls)
        finish = choice.finish_reason or None
    usage = raw.usage
    if usage is not None:
        _check_usage(usage)
    elif not (text or reasoning or fragments or finish):
        return None
    return Chunk(
        text=text,
        reasoning=reasoning,
        tool_fragments=fragments,
        finish_reason=finish,
        usage=usage,
        model=raw.model or "",
    )


def completion_chunks(whole: Completion) -> list[Chunk]:
    """A whole completion as the chunks a stream of the same answer would have had."""
    model = whole.model or ""
    chunks: list[Chunk] = []
    finish = "stop"
    if whole.choices:
        choice = whole.choices[0]
        message = choice.message or _Message()
        text, reasoning = "", ""
        content = message.content
        if isinstance(content, str):
            text = content
        elif content:
            text, reasoning = _parts(content)
        thought = message.reasoning_content
        if thought is None:
            thought = message.reasoning
        reasoning += thought or ""
        text += message.refusal or ""
        if reasoning:
            chunks.append(Chunk(reasoning=reasoning, model=model))
        if text:
            chunks.append(Chunk(text=text, model=model))
        calls = message.tool_calls or ()
        if calls:
            fragments = tuple(_fragment(tc, i) for i, tc in enumerate(calls))
            chunks.append(Chunk(tool_fragments=fragments, model=model))
        finish = choice.finish_reason or ("tool_calls" if calls else "stop")
    chunks.append(Chunk(finish_reason=finish, model=model))
    if whole.usage is not None:
        chunks.append(Chunk(usage=_check_usage(whole.usage), model=model))
    return chunks


#: the token counts of a usage mapping that the pipeline reads (``stages.usage``)
_COUNTS = (
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
)


def _check_usage(usage: dict[str, Any]) -> dict[str, Any]:
    """``usage`` as sent, its token counts checked: whole numbers or null."""
    for name in _COUNTS:
        _count(usage.get(name), f"usage.{name}")
    details = usage.get("prompt_tokens_details")
    if details is not None:
        if not isinstance(details, dict):
            _wrong("usage.prompt_tokens_details", details)
        _count(details.get("cached_tokens"), "usage.prompt_tokens_details.cached_tokens")
    return usage


def _count(value: object, field: str) -> None:
    if value is not None and value.__class__ is not int:
        _wrong(field, value)


def _wrong(field: str, value: object) -> None:
    raise MalformedResponse(
        f"the provider sent fields of the wrong type ({field} is"
        f" {type(value).__name__}: {str(value)[:40]!r}, not a whole number)"
    )


def _parts(parts: list[_Part]) -> tuple[str, str]:
    """``(text, reasoning)`` of a list of typed content parts."""
    text: list[str] = []
    reasoning: list[str] = []
    for part in parts:
        if part.type == "text" and part.text:
            text.append(part.text)
        elif part.type == "thinking":
            thinking = part.thinking
            if isinstance(thinking, str):
                reasoning.append(thinking)
            elif thinking:
                reasoning += [p.text for p in thinking if p.text and p.type == "text"]
    return "".join(text), "".join(reasoning)


def _fragment(tc: _ToolCall, index: int | None) -> ToolFragment:
    fn = tc.function
    if fn is None:
        return ToolFragment(index=index, id=tc.id or None)
    return ToolFragment(
        index=index, id=tc.id or None, name=fn.name or None, arguments=fn.arguments or ""
    )
