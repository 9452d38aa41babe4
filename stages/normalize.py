"""normalize: shape the caller's request into what its provider accepts.

consumes: ``Request``
emits: the normalized ``Request``
passes through: every other event
buffers: nothing

- the provider profile (``ctx.profile``): default or normalised
  ``api_base``, a default system prompt where one is required (the model
  string is left as the caller wrote it: how a backend routes it is the
  backend's business);
- system prompts first: ``Request.system`` becomes the first message, and
  system messages found later in the list move up behind it, in order;
- JSON mode as an instruction appended to the system prompt (one is created
  when there is none), which works on every provider, unlike
  ``response_format``;
- ghost assistant turns (no content, no tool calls) are dropped: some models
  answer them with more empty turns;
- an assistant turn's ``reasoning_content`` (``Response.to_message()`` keeps
  it) is sent only where the profile asks for it (``echo_reasoning``) and
  removed elsewhere;
- tool parameters become a JSON-schema object with ``properties`` and
  ``required``.

The result has ``system=None`` and ``json_mode=False``: running normalize
twice changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec

from pipeline.context import Context
from pipeline.events import Event, Request
from pipeline.profiles import DEFAULT, Profile, api_base_for
from pipeline.request import ToolSpec, derived
from pipeline.runner import closing
from pipeline.stage import Stage, stage

__all__ = ["JSON_INSTRUCTION", "normalize", "normalize_request", "normalize_tool"]

JSON_INSTRUCTION = "\n\nPlease respond with a valid JSON object."


def normalize() -> Stage:
    async def run(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                yield normalize_request(ev, ctx.profile) if isinstance(ev, Request) else ev

    return stage("normalize", run, contained=True)


def normalize_request(req: Request, profile: Profile = DEFAULT) -> Request:
    """The pure function behind the stage."""
    api_base = api_base_for(profile, req.api_base)
    systems: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    if req.system:
        systems.append({"role": "system", "content": req.system})
    for m in req.messages:
        if m["role"] == "system":
            systems.append(m)
        elif not _is_ghost(m):
            if "reasoning_content" in m and not profile.echo_reasoning:
                m = {k: v for k, v in m.items() if k != "reasoning_content"}
            others.append(m)
    if profile.default_system and not systems:
        systems.append({"role": "system", "content": profile.default_system})
    if req.json_mode:
        if systems:
            systems[0] = _append_instruction(systems[0])
        else:
            systems.append({"role": "system", "content": JSON_INSTRUCTION.strip()})
    tools = [normalize_tool(t) for t in req.tools] if req.tools else None
    return derived(
        req,
        api_base=api_base,
        messages=systems + others,
        system=None,
        json_mode=False,
        tools=tools,
    )


def _is_ghost(m: dict[str, Any]) -> bool:
    return m["role"] == "assistant" and not m.get("content") and not m.get("tool_calls")


def _append_instruction(msg: dict[str, Any]) -> dict[str, Any]:
    content = msg.get("content")
    if isinstance(content, list):
        parts = list(content)
        for i in range(len(parts) - 1, -1, -1):
            if parts[i].get("type") == "text":
                parts[i] = {**parts[i], "text": parts[i].get("text", "") + JSON_INSTRUCTION}
                return {**msg, "content": parts}
        return {**msg, "content": [*parts, {"type": "text", "text": JSON_INSTRUCTION.strip()}]}
    return {**msg, "content": (content or "") + JSON_INSTRUCTION}


def normalize_tool(tool: ToolSpec) -> ToolSpec:
    """The tool as sent: parameters a JSON-schema object with ``properties`` and ``required``."""
    params = tool.parameters
    schema = {
        **params,
        "type": "object",
        "properties": params.get("properties") or {},
        "required": list(params.get("required") or []),
    }
    if schema == params:
        return tool
    return msgspec.structs.replace(tool, parameters=schema)
