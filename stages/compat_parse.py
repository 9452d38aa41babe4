"""Reading tool calls out of plain text, for models without native tool use.

Three shapes are understood, in this order:

1. a JSON object (bare, or in a ``json`` fence, or inside other text):
   ``{"assistant_response": "...", "tool_calls": [{"name": ..., "arguments": {...}}]}``
   (``content`` / ``response`` also name the text; ``tool_call`` or a bare
   ``{"name", "arguments"}`` also name a call; arguments may be an object or
   a JSON string);
2. marker-wrapped blocks ``<|tool_call_start|>[tool(a=1), ...]<|tool_call_end|>``;
3. lines that are a call of a known tool, ``ask_user('q', ['a', 'b'])``
   (positional arguments follow the schema's property order).

Calls are parsed, never evaluated: arguments must be Python literals
(``ast.literal_eval``). Only the request's tools count; unknown tool names
in JSON or markers are dropped with a warning, and a line that calls some
other function stays text. The call lines and marker blocks are removed from
the text that remains.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from typing import Any

from pipeline.request import ToolSpec
from pipeline.secrets import guard_logger

__all__ = ["extract_json_object", "parse_compat_answer"]

log = guard_logger("llmpipe.tool_compat")

#: how many ``{`` positions an embedded JSON object is looked for at
MAX_JSON_STARTS = 64

MARKERS = re.compile(r"<\|tool_call_start\|>\s*(.*?)\s*<\|tool_call_end\|>", re.DOTALL)
_TEXT_KEYS = ("assistant_response", "content", "response")
_PROTOCOL_KEYS = {*_TEXT_KEYS, "tool_calls", "tool_call"}

Call = tuple[str, dict[str, Any]]


def parse_compat_answer(text: str, tools: Sequence[ToolSpec]) -> tuple[str, list[Call]]:
    """``(remaining text, [(tool name, arguments), ...])`` from a compat-mode answer."""
    known = {t.name: t for t in tools}
    payload = extract_json_object(text)
    if payload is not None and (
        _PROTOCOL_KEYS & payload.keys() or {"name", "arguments"} <= payload.keys()
    ):
        return _from_json(payload, known)
    rest, calls = _from_text(text, known)
    if calls:
        return rest, calls
    return text.strip(), []


def extract_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in ``text`` (whole, fenced, or embedded)."""
    stripped = text.strip()
    candidates = [stripped]
    if stripped.startswith("```"):
        lines = stripped.splitlines()
        if len(lines) >= 3:
            candidates.append("\n".join(lines[1:-1]).strip())
    decoder = json.JSONDecoder()
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except (json.JSONDecodeError, RecursionError):
            value = None
        if isinstance(value, dict):
            return value
        # a bounded number of starts: hostile text full of braces stays linear
        starts = [i for i, ch in enumerate(candidate) if ch == "{"][:MAX_JSON_STARTS]
        for start in starts:
            try:
                value, _ = decoder.raw_decode(candidate, start)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(value, dict):
                return value
    return None


def _from_json(payload: dict[str, Any], known: dict[str, ToolSpec]) -> tuple[str, list[Call]]:
    answer = next((payload[k] for k in _TEXT_KEYS if isinstance(payload.get(k), str)), "")
    raw_calls: Any = payload.get("tool_calls")
    if not raw_calls and {"name", "arguments"} <= payload.keys():
        raw_calls = [payload]
    elif not raw_calls and isinstance(payload.get("tool_call"), dict):
        raw_calls = [payload["tool_call"]]
    calls: list[Call] = []
    for raw in raw_calls if isinstance(raw_calls, list) else ():
        if not isinstance(raw, dict):
            continue
        fn: dict[str, Any] = raw["function"] if isinstance(raw.get("function"), dict) else {}
        name = raw.get("name") or raw.get("tool_name") or fn.get("name")
        if name not in known:
            if name:
                log.warning("ignoring a call of unknown tool %r in a tool-compat answer", name)
            continue
        args = next(
            (raw[k] for k in ("arguments", "tool_input", "input") if raw.get(k) is not None),
            fn.get("arguments", {}),
        )
        calls.append((name, _arguments(args)))
    return answer.strip(), calls


def _arguments(args: Any) -> dict[str, Any]:
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError):
            return {"_raw": args}
    return args if isinstance(args, dict) else {"value": args}


def _from_text(text: str, known: dict[str, ToolSpec]) -> tuple[str, list[Call]]:
    calls: list[Call] = []
    for block in MARKERS.findall(text):
        calls += _calls_in(block, known, warn=True)
    kept: list[str] = []
    for line in MARKERS.sub("", text).splitlines():
        candidate = line.strip()
        if len(candidate) > 1 and candidate[0] == candidate[-1] == "`":
            candidate = candidate[1:-1].strip()
        found = _calls_in(candidate, known, warn=False) if candidate else []
        if found:
            calls += found
        else:
            kept.append(line)
    return "\n".join(kept).strip(), calls


def _calls_in(block: str, known: dict[str, ToolSpec], *, warn: bool) -> list[Call]:
    """The calls of known tools in ``tool(...)`` or ``[tool(...), ...]``."""
    try:
        node = ast.parse(block.strip(), mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # hostile text too
        return []
    calls: list[Call] = []
    for call in node.elts if isinstance(node, ast.List) else [node]:
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name):
            continue
        tool = known.get(call.func.id)
        if tool is None:
            if warn:
                log.warning(
                    "ignoring a call of unknown tool %r in a tool-compat answer", call.func.id
                )
            continue
        try:
            calls.append((tool.name, _call_arguments(call, tool)))
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            continue
    return calls


def _call_arguments(call: ast.Call, tool: ToolSpec) -> dict[str, Any]:
    order = list((tool.parameters.get("properties") or {}).keys())
    if len(call.args) > len(order):
        raise ValueError("more positional arguments than the tool has parameters")
    args = {order[i]: ast.literal_eval(node) for i, node in enumerate(call.args)}
    for kw in call.keywords:
        if kw.arg is None:
            raise ValueError("**kwargs are not literals")
        args[kw.arg] = ast.literal_eval(kw.value)
    return args
