"""litellm's responses as provider-neutral ``Chunk``s (pure conversions).

``to_chunk`` converts one streamed ``ModelResponseStream``;
``response_chunks`` plays a whole non-streamed ``ModelResponse`` back as the
chunks a stream of the same answer would have produced, so the stages after
dispatch cannot tell the difference.

Two things litellm's objects hold that their plain attributes do not say:

- the model the provider named (``gpt-4o-2024-08-06`` when ``gpt-4o`` was
  asked for): litellm sets ``model`` to the requested name and keeps the
  provider's in ``_hidden_params["provider_response_model"]``;
- a refusal (OpenAI's ``delta.refusal``, sent instead of content): litellm
  passes it through as a field of its own; here it is the answer's text, as
  the direct backend reads it (the model answered; an empty answer would be
  retried for nothing).

litellm's objects are pydantic models that keep most fields in
``__pydantic_extra__``, where every attribute access goes through pydantic's
``__getattr__`` (1-3 µs each, a miss the slowest); ``_get`` and ``_opt``
read the two dicts directly, and fall back to attribute access for anything
else (the plain objects of tests and of litellm's untyped routes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pipeline.errors import MalformedResponse
from pipeline.events import Chunk, ToolFragment

__all__ = ["provider_reported_usage", "response_chunks", "to_chunk", "usage_dict"]

T = TypeVar("T")


def to_chunk(raw: Any) -> Chunk:
    """A litellm ``ModelResponseStream`` as a ``Chunk``.

    Every field is checked for the type it must have: a provider that sends
    ``content`` as a number or ``choices`` as a string gets ``MalformedResponse``
    naming the field, not a ``TypeError`` three stages later.
    """
    return _readable(_to_chunk, raw)


def response_chunks(response: Any) -> list[Chunk]:
    """A non-streamed litellm ``ModelResponse`` as the chunks of a stream."""
    return _readable(_response_chunks, response)


def _readable(convert: Callable[[Any], T], raw: Any) -> T:
    try:
        return convert(raw)
    except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    raise MalformedResponse(f"the provider sent a chunk that cannot be read ({problem[:200]})")


_MISSING: Any = object()


def _get(obj: Any, name: str) -> Any:
    """``obj.name``, read from a pydantic model's field dicts when it is there."""
    value = obj.__dict__.get(name, _MISSING)
    if value is _MISSING:
        extra = getattr(obj, "__pydantic_extra__", None)
        value = extra.get(name, _MISSING) if extra else _MISSING
        if value is _MISSING:
            return getattr(obj, name)
    return value


def _opt(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)``, without pydantic's slow miss."""
    value = obj.__dict__.get(name, _MISSING)
    if value is not _MISSING:
        return value
    extra = getattr(obj, "__pydantic_extra__", _MISSING)
    if extra is _MISSING:  # not a pydantic model
        return getattr(obj, name, None)
    return extra.get(name) if extra else None


def _provider_model(raw: Any) -> object:
    """The model the provider named, which litellm keeps aside; else litellm's ``model``."""
    private = getattr(raw, "__pydantic_private__", None)
    hidden = private.get("_hidden_params") if private else None
    named = hidden.get("provider_response_model") if isinstance(hidden, dict) else None
    return named or _opt(raw, "model")


def _to_chunk(raw: Any) -> Chunk:
    text = reasoning = ""
    fragments: tuple[ToolFragment, ...] = ()
    finish: str | None = None
    choices = _get(raw, "choices")
    if choices:
        choice = choices[0]
        delta = _get(choice, "delta")
        if delta is not None:
            text = _str(_get(delta, "content"), "delta.content")
            reasoning = _str(_opt(delta, "reasoning_content"), "delta.reasoning_content")
            refusal = _opt(delta, "refusal")
            if refusal:
                text += _str(refusal, "delta.refusal")
            calls = _get(delta, "tool_calls")
            if calls:
                fragments = tuple(_fragment(tc, tc.index) for tc in calls)
        finish = _str(_get(choice, "finish_reason"), "finish_reason") or None
    usage = _opt(raw, "usage")
    return Chunk(
        text=text,
        reasoning=reasoning,
        tool_fragments=fragments,
        finish_reason=finish,
        usage=usage_dict(usage) if usage is not None else None,
        model=_str(_provider_model(raw), "model"),
    )


def _str(value: object, field: str) -> str:
    """A text field: a string or nothing; anything else is a malformed answer."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise MalformedResponse(
        f"the provider sent {field} as {type(value).__name__} ({str(value)[:40]!r}), not text"
    )


def _index(value: object) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise MalformedResponse(f"the provider sent a tool call index as {type(value).__name__}")


def _response_chunks(response: Any) -> list[Chunk]:
    model = _str(_provider_model(response), "model")
    chunks: list[Chunk] = []
    finish = "stop"
    if response.choices:
        choice = response.choices[0]
        message = choice.message
        reasoning = _str(getattr(message, "reasoning_content", None), "reasoning_content")
        if reasoning:
            chunks.append(Chunk(reasoning=reasoning, model=model))
        content = _str(message.content, "message.content")
        content += _str(_opt(message, "refusal"), "message.refusal")
        if content:
            chunks.append(Chunk(text=content, model=model))
        calls = message.tool_calls or ()
        if calls:
            fragments = tuple(_fragment(tc, i) for i, tc in enumerate(calls))
            chunks.append(Chunk(tool_fragments=fragments, model=model))
        finish = _str(choice.finish_reason, "finish_reason") or ("tool_calls" if calls else "stop")
    chunks.append(Chunk(finish_reason=finish, model=model))
    usage = getattr(response, "usage", None)
    if usage is not None:
        chunks.append(Chunk(usage=usage_dict(usage), model=model))
    return chunks


def _fragment(tc: Any, index: object) -> ToolFragment:
    fn = tc.function
    return ToolFragment(
        index=_index(index),
        id=_str(tc.id, "tool_calls.id") or None,
        name=(_str(fn.name, "tool_calls.function.name") or None) if fn is not None else None,
        arguments=_str(fn.arguments, "tool_calls.function.arguments") if fn is not None else "",
    )


def usage_dict(usage: Any) -> dict[str, Any]:
    """litellm's ``Usage`` object as a plain mapping (``None`` values left out)."""
    if isinstance(usage, Mapping):
        return dict(usage)
    dump = getattr(usage, "model_dump", None)
    data = dump() if dump is not None else vars(usage)
    return {k: v for k, v in data.items() if v is not None}


def provider_reported_usage(response: Any) -> bool:
    """Whether the provider itself reported usage, or litellm invented it.

    With no usage from the server litellm yields an estimate that looks real;
    the raw chunks it keeps (``response.chunks``) then carry no usage at all.
    """
    chunks = getattr(response, "chunks", None) or ()
    return any(getattr(c, "usage", None) is not None for c in chunks)
