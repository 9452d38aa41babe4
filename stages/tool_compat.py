"""tool_compat: tool calling for models that cannot use native tools where routed.

consumes: ``Request`` with tools, when the profile has tool-compat errors
    (OpenRouter routes some models to providers without tool support)
emits: what its inner stage (dispatch) emits; in compat mode, the answer
    rebuilt as chunks: the remaining text, the parsed calls as tool-call
    fragments, a finish (``tool_calls`` when calls were found) and the usage
passes through: every other event, and every request it need not touch
buffers: in compat mode, the whole answer (it can only be parsed whole)

When a native attempt fails, before any chunk, with an error saying the
model cannot use tools there, the model is remembered (in the pipeline's
shared state, bounded) and asked again without native tools, with an
instruction to answer in a small JSON tool protocol; the answer is parsed by
``stages.compat_parse``. Later requests for a remembered model go straight
to compat mode.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import ClassVar

import msgspec

from pipeline.context import Context
from pipeline.errors import ProviderError
from pipeline.events import Chunk, Event, Request, ToolFragment
from pipeline.runner import closing, once
from pipeline.secrets import guard_logger
from pipeline.stage import Segment, Stage
from stages.compat_parse import parse_compat_answer

__all__ = ["ModelMemory", "ToolCompat", "compat_request", "tool_compat"]

log = guard_logger("llmpipe.tool_compat")

INSTRUCTION = """\
Tool compatibility mode is active: native function calling is not available \
for this model here, so tools are called through your answer instead.
Answer with one JSON object and nothing else, of this shape:
{"assistant_response": "<text for the user>",
 "tool_calls": [{"name": "<tool>", "arguments": {...}}]}
- To call tools, list them in tool_calls; never make up a tool's result.
- With no tool to call, leave tool_calls empty and answer in assistant_response.
- Use only these tools, with arguments that are JSON objects:
"""


class ModelMemory:
    """The models known to need compat mode: a bounded, thread-safe LRU set."""

    def __init__(self, limit: int = 512) -> None:
        self._models: OrderedDict[str, None] = OrderedDict()
        self._limit = limit
        self._lock = threading.Lock()

    def __contains__(self, model: object) -> bool:
        with self._lock:
            return model in self._models

    def add(self, model: str) -> None:
        with self._lock:
            self._models[model] = None
            self._models.move_to_end(model)
            while len(self._models) > self._limit:
                self._models.popitem(last=False)


def compat_request(req: Request) -> Request:
    """The request asked again without native tools, with the JSON tool protocol."""
    specs = [
        {"name": t.name, "description": t.description, "parameters": t.parameters}
        for t in req.tools or ()
    ]
    instruction = INSTRUCTION + json.dumps(specs, ensure_ascii=True)
    messages = list(req.messages)
    if messages and messages[0]["role"] == "system" and isinstance(messages[0].get("content"), str):
        messages[0] = {**messages[0], "content": f"{messages[0]['content']}\n\n{instruction}"}
    else:
        messages.insert(0, {"role": "system", "content": instruction})
    return msgspec.structs.replace(req, messages=messages, tools=None)


@dataclass(frozen=True, slots=True)
class ToolCompat:
    """A segment around dispatch."""

    stages: tuple[Stage, ...]
    name: str = "tool_compat"
    #: its own code starts no spans: what it logs or calls runs under the call's span
    contained: ClassVar[bool] = True

    def with_stages(self, stages: tuple[Stage, ...]) -> Segment:
        return replace(self, stages=stages)

    def stands_aside(self, ctx: Context) -> bool:
        """Without tools, or for a profile that always has native tools, nothing to do."""
        return not (ctx.request.tools and ctx.profile.tool_compat)

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream, ctx)

    async def _run(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        memory = ctx.shared.setdefault("tool_compat.models", ModelMemory)
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                if not (ev.tools and ctx.profile.tool_compat):
                    async with closing(ctx.run(self.stages, once(ev))) as inner:
                        async for out in inner:
                            yield out
                    continue
                if ev.model not in memory:
                    started = False
                    try:
                        async with closing(ctx.run(self.stages, once(ev))) as inner:
                            async for out in inner:
                                started = True
                                yield out
                        continue
                    except ProviderError as exc:
                        if started or not _rejects_tools(exc, ctx):
                            raise
                        memory.add(ev.model)
                        log.info(
                            "%s cannot use native tools here; switching to tool-compat mode",
                            ev.model,
                        )
                async with closing(self._compat(ev, ctx)) as outs:
                    async for out in outs:
                        yield out

    async def _compat(self, req: Request, ctx: Context) -> AsyncIterator[Event]:
        text: list[str] = []
        usage: list[Chunk] = []
        finish: str | None = None
        model = ""
        async with closing(ctx.run(self.stages, once(compat_request(req)))) as inner:
            async for out in inner:
                if type(out) is not Chunk:
                    yield out
                    continue
                assert isinstance(out, Chunk)
                text.append(out.text)
                finish = finish or out.finish_reason
                model = out.model or model
                if out.usage is not None:
                    usage.append(out)
        answer, calls = parse_compat_answer("".join(text), req.tools or ())
        if answer:
            yield Chunk(text=answer, model=model)
        if calls:
            prefix = f"{ctx.profile.name}_compat_{uuid.uuid4().hex[:12]}"
            yield Chunk(
                tool_fragments=tuple(
                    ToolFragment(index=i, id=f"{prefix}_{i}", name=name, arguments=json.dumps(args))
                    for i, (name, args) in enumerate(calls)
                ),
                model=model,
            )
        yield Chunk(finish_reason="tool_calls" if calls else finish or "stop", model=model)
        for chunk in usage:
            yield chunk


def _rejects_tools(exc: ProviderError, ctx: Context) -> bool:
    text = str(exc).lower()
    return any(snippet in text for snippet in ctx.profile.tool_compat_errors)


def tool_compat(*stages: Stage) -> ToolCompat:
    return ToolCompat(tuple(stages))
