"""Replies rendered in the OpenAI chat-completions and Anthropic messages formats."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import msgspec

from pipeline.testing.fakeprovider.script import (
    Api,
    Done,
    ErrorDetail,
    FinishStep,
    Reasoning,
    Step,
    Text,
    ToolDelta,
    UsageStep,
)


def usage_json(u: UsageStep) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
    }
    if u.cache_read_input_tokens is not None:
        out["cache_read_input_tokens"] = u.cache_read_input_tokens
    return out


def last_usage(steps: tuple[Step, ...]) -> UsageStep | None:
    found: UsageStep | None = None
    for s in steps:
        if isinstance(s, UsageStep) or (isinstance(s, FinishStep) and s.usage is not None):
            found = s if isinstance(s, UsageStep) else s.usage
    return found


def tool_json(t: ToolDelta) -> dict[str, Any]:
    out: dict[str, Any] = {} if t.index is None else {"index": t.index}
    if t.id is not None:
        out |= {"id": t.id, "type": "function"}
    fn = {k: v for k, v in (("name", t.name), ("arguments", t.arguments)) if v is not None}
    return out | {"function": fn} if fn else out


def error_json(api: Api | None, e: ErrorDetail) -> bytes:
    if api == "anthropic":
        body: dict[str, Any] = {"type": "error", "error": {"type": e.type, "message": e.message}}
        return msgspec.json.encode(body)
    return msgspec.json.encode({"error": {"message": e.message, "type": e.type, "code": e.code}})


class OpenAIFormat:
    """Renders steps as ``chat.completion.chunk`` SSE events or one ``chat.completion``."""

    def __init__(self, n: int, model: str) -> None:
        self.base = {"id": f"chatcmpl-fake-{n}", "created": int(time.time()), "model": model}
        self.role_sent = False

    def _sse(self, choices: list[Any], **extra: Any) -> list[bytes]:
        chunk = {**self.base, "object": "chat.completion.chunk", "choices": choices, **extra}
        return [b"data: " + msgspec.json.encode(chunk) + b"\n\n"]

    def events(self, step: Step) -> list[bytes]:
        if isinstance(step, Done):
            return [b"data: [DONE]\n\n"]
        if isinstance(step, UsageStep):
            return self._sse([], usage=usage_json(step))
        if isinstance(step, FinishStep):
            extra = {} if step.usage is None else {"usage": usage_json(step.usage)}
            return self._sse([{"index": 0, "delta": {}, "finish_reason": step.reason}], **extra)
        if isinstance(step, Text):
            delta: dict[str, Any] = {"content": step.text}
        elif isinstance(step, Reasoning):
            delta = {"reasoning_content": step.text}
        elif isinstance(step, ToolDelta):
            delta = {"tool_calls": [tool_json(step)]}
        else:
            return []
        if not self.role_sent:
            delta, self.role_sent = {"role": "assistant", **delta}, True
        return self._sse([{"index": 0, "delta": delta, "finish_reason": None}])

    def end(self) -> list[bytes]:
        return self.events(Done())

    def message(self, steps: tuple[Step, ...]) -> dict[str, Any]:
        """Assemble the non-streamed object; tool fragments merge as a client would."""
        texts = [s.text for s in steps if isinstance(s, Text)]
        thoughts = [s.text for s in steps if isinstance(s, Reasoning)]
        calls: list[dict[str, Any]] = []
        by_id: dict[str, dict[str, Any]] = {}
        by_index: dict[int | None, dict[str, Any]] = {}
        for s in steps:
            if not isinstance(s, ToolDelta):
                continue
            if s.id is not None and s.id in by_id:
                call = by_id[s.id]
            elif s.id is not None or not calls:
                call = {
                    "id": s.id or f"call_fake_{len(calls)}",
                    "type": "function",
                    "function": {"name": "", "arguments": ""},
                }
                calls.append(call)
                by_id[call["id"]] = call
            else:
                call = by_index.get(s.index, calls[-1])
            by_index[s.index] = call
            call["function"]["name"] = s.name or call["function"]["name"]
            call["function"]["arguments"] += s.arguments or ""
        msg: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if thoughts:
            msg["reasoning_content"] = "".join(thoughts)
        if calls:
            msg["tool_calls"] = calls
        reason = next((s.reason for s in reversed(steps) if isinstance(s, FinishStep)), "stop")
        out = {
            **self.base,
            "object": "chat.completion",
            "choices": [{"index": 0, "message": msg, "finish_reason": reason}],
        }
        usage = last_usage(steps)
        return out if usage is None else out | {"usage": usage_json(usage)}


class AnthropicFormat:
    """Renders steps as Anthropic messages SSE events, or folds them into one ``message``."""

    def __init__(self, n: int, model: str, steps: tuple[Step, ...]) -> None:
        self.n, self.model, self.usage = n, model, last_usage(steps)  # pre-scanned
        self.started, self.block, self.index = False, "", -1

    def _output_tokens(self) -> int:
        return self.usage.completion_tokens if self.usage else 0

    def _usage(self, output: int) -> dict[str, Any]:
        u = self.usage
        out = {"input_tokens": u.prompt_tokens if u else 0, "output_tokens": output}
        cache = u and (
            u.cache_read_input_tokens
            if u.cache_read_input_tokens is not None
            else u.cached_tokens or None
        )
        return out if cache is None else out | {"cache_read_input_tokens": cache}

    def _close(self) -> list[dict[str, Any]]:
        ev = [{"type": "content_block_stop", "index": self.index}] if self.block else []
        self.block = ""
        return ev

    def _open(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        ev = self._close()
        self.index, self.block = self.index + 1, kind
        return [*ev, {"type": "content_block_start", "index": self.index, "content_block": block}]

    def dicts(self, step: Step) -> list[dict[str, Any]]:
        ev: list[dict[str, Any]] = []
        if not self.started:
            self.started = True
            ev.append(
                {
                    "type": "message_start",
                    "message": {
                        "id": f"msg_fake_{self.n}",
                        "type": "message",
                        "role": "assistant",
                        "model": self.model,
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": self._usage(0),
                    },
                }
            )
        delta: dict[str, Any] | None = None
        if isinstance(step, Text):
            if self.block != "text":
                ev += self._open("text", {"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": step.text}
        elif isinstance(step, Reasoning):
            if self.block != "thinking":
                ev += self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
            delta = {"type": "thinking_delta", "thinking": step.text}
        elif isinstance(step, ToolDelta):
            if step.id is not None or self.block != "tool_use":
                ev += self._open(
                    "tool_use",
                    {
                        "type": "tool_use",
                        "input": {},
                        "id": step.id or f"toolu_fake_{self.index + 1}",
                        "name": step.name or "",
                    },
                )
            if step.arguments:
                delta = {"type": "input_json_delta", "partial_json": step.arguments}
        elif isinstance(step, FinishStep):
            stop = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}
            ev += [
                *self._close(),
                {
                    "type": "message_delta",
                    "usage": {"output_tokens": self._output_tokens()},
                    "delta": {
                        "stop_reason": stop.get(step.reason, step.reason),
                        "stop_sequence": None,
                    },
                },
            ]
        elif isinstance(step, Done):
            ev += [*self._close(), {"type": "message_stop"}]
        if delta is not None:
            ev.append({"type": "content_block_delta", "index": self.index, "delta": delta})
        return ev

    def events(self, step: Step) -> list[bytes]:
        return [
            b"event: " + d["type"].encode() + b"\ndata: " + msgspec.json.encode(d) + b"\n\n"
            for d in self.dicts(step)
        ]

    def end(self) -> list[bytes]:
        return self.events(Done())

    def message(self, steps: tuple[Step, ...]) -> dict[str, Any]:
        """Fold the stream events into the non-streamed ``message`` object."""
        msg: dict[str, Any] = {}
        partial: dict[int, str] = {}
        for ev in [e for s in (*steps, Done()) for e in self.dicts(s)]:
            if ev["type"] == "message_start":
                msg = ev["message"]
            elif ev["type"] == "content_block_start":
                msg["content"].append(ev["content_block"])
            elif ev["type"] == "content_block_delta":
                block, d = msg["content"][ev["index"]], ev["delta"]
                if d["type"] == "input_json_delta":
                    partial[ev["index"]] = partial.get(ev["index"], "") + d["partial_json"]
                else:
                    key = "text" if d["type"] == "text_delta" else "thinking"
                    block[key] += d[key]
            elif ev["type"] == "message_delta":
                msg["stop_reason"] = ev["delta"]["stop_reason"]
        for i, text in partial.items():
            with contextlib.suppress(msgspec.DecodeError):
                msg["content"][i]["input"] = msgspec.json.decode(text)
        msg["stop_reason"] = msg["stop_reason"] or "end_turn"
        msg["usage"] = self._usage(self._output_tokens())
        return msg


def api_of(method: str, path: str) -> Api | None:
    route = path.split("?", 1)[0].rstrip("/")
    if method != "POST":
        return None
    if route.endswith("/chat/completions"):
        return "openai"
    return "anthropic" if route.endswith("/messages") else None
