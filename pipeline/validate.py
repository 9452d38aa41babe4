"""The checks a ``Request`` runs on itself: what may be sent, shape by shape.

Every check raises ``InvalidRequest`` naming the field (``messages[1].content[0].text``,
``tools[2].parameters.properties``, ``extra.temperature``); nothing is ever sent for
a request that fails one. The rules are the providers' own, applied before a
request leaves the process, so a mistake costs no round trip and is never retried:

- every value sent is JSON as the wire takes it: dicts with string keys, lists,
  strings that encode as UTF-8 (no lone surrogates), finite numbers (no NaN or
  infinity), integers within 64 bits, booleans and null; nested at most
  ``MAX_DEPTH`` deep, at most ``MAX_VALUES`` values per field, strings at most
  ``MAX_STRING_CHARS`` long (a 10 MB message is fine);
- messages and their content parts have the shape their role allows
  (``pipeline.validate_messages``), tool names match ``TOOL_NAME``, tool schemas
  are JSON-schema objects;
- header-bound values (``api_key``, extra headers) hold no control characters;
  ``api_base`` is an http(s) URL with a host and a valid port.

The walk is iterative (no ``RecursionError`` whatever the nesting) and linear in
the size of the request: each string is checked once (an ASCII string in constant
time: CPython knows it is ASCII; any other is encoded once, at C speed).
"""

from __future__ import annotations

import functools
import math
import re
import reprlib
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline.errors import InvalidRequest

__all__ = [
    "MAX_DEPTH",
    "MAX_STRING_CHARS",
    "MAX_VALUES",
    "NAME_SAFE",
    "RESERVED_EXTRA",
    "TOOL_NAME",
    "check_api_base",
    "check_api_key",
    "check_extra",
    "check_json",
    "check_model",
    "check_response_format",
    "check_text",
    "check_tool_name",
    "check_tool_schema",
    "shown",
]

#: deepest nesting of any value sent (a message, a tool schema, ``extra``)
MAX_DEPTH = 64
#: most values (scalars and containers) in one field's JSON tree
MAX_VALUES = 1_000_000
#: longest single string, in characters (a whole 10 MB document fits)
MAX_STRING_CHARS = 64 * 1024 * 1024
#: what providers accept as a tool (function) name
TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_INT64 = 2**63
_HEADER_SAFE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an HTTP header may carry
_HEADER_VALUE = re.compile(r"[\x20-\x7e]*")
#: no whitespace, no control characters (model names, message names)
NAME_SAFE = re.compile(r"[^\x00-\x20\x7f]+")


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 40, 40, 40


def shown(value: object) -> str:
    """A short repr for error messages, safe on any value (any nesting, any size)."""
    try:
        return _REPR.repr(value)
    except Exception:  # a __repr__ that raises
        return f"<{type(value).__name__}>"


def _where(base: str, path: list[str | int]) -> str:
    out = base
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else f".{key}"
    return out


def check_text(where: str, text: str) -> None:
    """A string that encodes as UTF-8 and is not absurdly long."""
    if len(text) > MAX_STRING_CHARS:
        raise InvalidRequest(
            where, f"is {len(text):,} characters; the limit is {MAX_STRING_CHARS:,}"
        )
    if text.isascii():
        return
    try:
        text.encode("utf-16-le")  # refuses lone surrogates as UTF-8 would, faster
    except UnicodeEncodeError as exc:
        bad = exc.start
    else:
        return
    # raised outside the except block: nothing chained that holds the text
    raise InvalidRequest(
        where, f"is not valid UTF-8 text: a lone surrogate {text[bad]!a} at index {bad}"
    )


def check_json(where: str, value: object, *, max_depth: int = MAX_DEPTH) -> None:
    """``value`` as JSON the wire accepts; iterative, so any nesting is refused cleanly."""
    path: list[str | int] = []
    stack: list[tuple[Iterator[tuple[Any, Any]], bool]] = []  # (children, of a dict)
    count = 0
    node: object = value
    while True:
        count += 1
        if count > MAX_VALUES:
            raise InvalidRequest(_where(where, path), f"holds more than {MAX_VALUES:,} values")
        if isinstance(node, str):
            check_text(_where(where, path), node)
        elif isinstance(node, dict | list | tuple):
            if len(stack) >= max_depth:
                raise InvalidRequest(
                    _where(where, path), f"is nested more than {max_depth} levels deep"
                )
            if isinstance(node, dict):
                stack.append((iter(node.items()), True))
            else:
                stack.append((enumerate(node), False))
            path.append(0)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise InvalidRequest(_where(where, path), f"{node!r} is not a JSON number")
        elif isinstance(node, int):  # bool included
            if not -_INT64 <= node < _INT64:
                raise InvalidRequest(_where(where, path), "is an integer beyond 64 bits")
        elif node is not None:
            raise InvalidRequest(
                _where(where, path), f"is not JSON-serialisable ({type(node).__name__})"
            )
        while stack:
            children, is_dict = stack[-1]
            step = next(children, None)
            if step is None:
                stack.pop()
                path.pop()
                continue
            key, node = step
            if is_dict:
                if not isinstance(key, str):
                    raise InvalidRequest(
                        _where(where, path[:-1]), f"has a key that is not a string: {shown(key)}"
                    )
                check_text(_where(where, path[:-1]), key)
            path[-1] = key
            break
        else:
            return


# --- tools, extra, response_format ----------------------------------------------------------


def check_tool_name(where: str, name: object) -> str:
    if not isinstance(name, str) or not TOOL_NAME.fullmatch(name):
        what = shown(name) if isinstance(name, str) else type(name).__name__
        raise InvalidRequest(where, f"{what} must match ^[a-zA-Z0-9_-]{{1,64}}$")
    return name


def check_tool_schema(where: str, schema: object) -> None:
    """A tool's ``parameters``: a JSON-schema object whose ``properties`` is an object."""
    if not isinstance(schema, dict):
        raise InvalidRequest(where, f"must be a JSON-schema object, got {type(schema).__name__}")
    if schema.get("type", "object") != "object":
        raise InvalidRequest(where, "must be a JSON-schema object (type 'object')")
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise InvalidRequest(f"{where}.properties", "must be an object (a dict of schemas)")
        for key, sub in props.items():
            if not isinstance(sub, dict | bool):
                raise InvalidRequest(f"{where}.properties.{key}", "must be a schema (a dict)")
    required = schema.get("required")
    if required is not None and (
        not isinstance(required, list) or not all(isinstance(r, str) for r in required)
    ):
        raise InvalidRequest(f"{where}.required", "must be a list of property names")
    check_json(where, schema)


#: ``extra`` keys with a known type: refused early when the type is wrong
_NUMBER, _INT, _BOOL, _STR, _DICT = "a number", "an integer", "a boolean", "a string", "a dict"
_EXTRA_TYPES: Mapping[str, str] = {
    **dict.fromkeys(
        ("temperature", "top_p", "frequency_penalty", "presence_penalty", "min_p", "timeout"),
        _NUMBER,
    ),
    **dict.fromkeys(("seed", "n", "top_k", "max_completion_tokens", "top_logprobs"), _INT),
    **dict.fromkeys(("parallel_tool_calls", "logprobs", "store"), _BOOL),
    **dict.fromkeys(("user", "reasoning_effort", "service_tier"), _STR),
    **dict.fromkeys(("metadata", "extra_body", "logit_bias", "extra_headers", "headers"), _DICT),
}


def _has_type(value: object, kind: str) -> bool:
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _STR:
        return isinstance(value, str)
    if kind == _DICT:
        return isinstance(value, dict)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (kind == _NUMBER and isinstance(value, float))


#: keys of ``extra`` (a request's or a fallback target's) that would silently
#: override what the pipeline sets
RESERVED_EXTRA = frozenset(
    {
        "model",
        "messages",
        "stream",
        "stream_options",
        "tools",
        "max_tokens",
        "api_key",
        "api_base",
        "response_format",
        "max_retries",
        "num_retries",
        "base_url",
        "fallbacks",
    }
)


def check_extra(extra: object, reserved: frozenset[str] = RESERVED_EXTRA) -> None:
    """``Request.extra``: more provider parameters, JSON-safe, typed where we know them."""
    if not isinstance(extra, dict):
        raise InvalidRequest("extra", "must be a dict of extra provider parameters")
    for key, value in extra.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise InvalidRequest("extra", f"{shown(key)} is not a parameter name")
        where = f"extra.{key}"
        if key in reserved:
            raise InvalidRequest(where, "is set by the pipeline; use the Request field instead")
        kind = _EXTRA_TYPES.get(key)
        if kind is not None and value is not None and not _has_type(value, kind):
            raise InvalidRequest(where, f"must be {kind}, got {type(value).__name__}")
        if key in ("extra_headers", "headers") and value is not None:
            _check_headers(where, value)
        check_json(where, value)


def _check_headers(where: str, headers: object) -> None:
    if not isinstance(headers, dict):
        raise InvalidRequest(where, "must be a dict of header names to values")
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_SAFE.fullmatch(name) or ":" in name:
            raise InvalidRequest(where, f"{shown(name)} is not a valid header name")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise InvalidRequest(
                f"{where}.{name}", "must be a string of printable ASCII (no CR, LF or controls)"
            )


def check_response_format(value: object) -> None:
    if not isinstance(value, dict):
        raise InvalidRequest("response_format", f"must be a dict, got {type(value).__name__}")
    kind = value.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        raise InvalidRequest(
            "response_format.type", "must be 'text', 'json_object' or 'json_schema'"
        )
    if kind == "json_schema":
        spec = value.get("json_schema")
        if not isinstance(spec, dict):
            raise InvalidRequest("response_format.json_schema", "must be a dict")
        check_tool_name("response_format.json_schema.name", spec.get("name"))
        schema = spec.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise InvalidRequest("response_format.json_schema.schema", "must be a dict")
    check_json("response_format", value)


# --- scalars --------------------------------------------------------------------------------


def check_model(model: object) -> None:
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("model", "must be a non-empty string such as 'openai/gpt-4o-mini'")
    if not NAME_SAFE.fullmatch(model):
        raise InvalidRequest("model", "must not contain whitespace or control characters")
    check_text("model", model)


def check_api_key(key: object) -> None:
    """Goes into an HTTP header: visible ASCII only (CR/LF would inject headers)."""
    if key is None:
        return
    if not isinstance(key, str):
        raise InvalidRequest("api_key", f"must be a string, got {type(key).__name__}")
    if not key:
        raise InvalidRequest("api_key", "is empty; pass None to use the provider's variable")
    if not _HEADER_SAFE.fullmatch(key):
        # never quote the key, not even a piece of it
        raise InvalidRequest(
            "api_key", "must be printable ASCII without spaces (no CR, LF or control characters)"
        )


def check_api_base(base: object) -> None:
    """An http(s) URL with a host and a port in range."""
    if base is None:
        return
    if not isinstance(base, str) or not _HEADER_SAFE.fullmatch(base):
        raise InvalidRequest("api_base", "must be a URL of printable ASCII without spaces")
    _check_url(base)


@functools.lru_cache(maxsize=256)
def _check_url(base: str) -> None:
    """``check_api_base``'s parse (a few µs): once per distinct URL that passed, since a
    program sends to a handful of them; one that fails raises every time."""
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest("api_base", "must be an http:// or https:// URL")
    if not parts.hostname:
        raise InvalidRequest("api_base", f"{shown(base)} has no host")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise InvalidRequest("api_base", f"{shown(base)} has no valid port (1-65535)")
