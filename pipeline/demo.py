"""``llmpipe demo``: a scripted session through the full default pipeline, offline.

The built-in fake provider plays the model on 127.0.0.1; everything else is
the real thing: litellm, HTTP, streaming, every stage.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from pipeline.core import Pipeline
from pipeline.events import Finish, TextDelta, ToolCall
from pipeline.fakeprovider import FakeProvider, Reply, Stall, Text, ToolDelta, Usage
from pipeline.fakeprovider import Finish as FinishStep
from pipeline.request import Request, ToolSpec

__all__ = ["run_demo"]

WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"properties": {"city": {"type": "string"}}, "required": ["city"]},
)
QUESTION = "What's the weather in Paris?"
PAUSE = Stall(0.03)  # so the stream is visibly a stream


def _streamed(text: str, *tail: Any) -> Reply:
    steps: list[Any] = []
    for word in text.split(" "):
        steps += [Text(word + " "), PAUSE]
    return Reply(steps=(*steps, *tail))


def _script() -> list[Reply]:
    ask_tool = _streamed(
        "Let me check the weather for you.",
        ToolDelta(index=0, id="call_weather_1", name="get_weather", arguments='{"city": '),
        PAUSE,
        ToolDelta(index=0, arguments='"Paris"}'),
        FinishStep("tool_calls"),
        Usage(52, 18),
    )
    answer = _streamed(
        "It is 18 °C and sunny in Paris right now: a good day for a walk.",
        FinishStep("stop"),
        Usage(87, 16, cached_tokens=52),
    )
    return [ask_tool, answer]


def _get_weather(city: str) -> str:
    return f"{city}: 18 °C, sunny, light wind"


async def run_demo(out: TextIO) -> int:
    pipe = Pipeline.default()
    with FakeProvider() as fake:
        fake.script(*_script())
        out.write(f"llmpipe demo: fake provider at {fake.base_url} (no keys, no network)\n\n")
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        out.write(f"user> {QUESTION}\n")
        for _turn in range(4):
            request = Request(
                model="openai/demo-model",
                messages=messages,
                system="You are a concise assistant.",
                tools=[WEATHER],
                api_base=fake.base_url,
                api_key="demo-key-not-a-secret",
            )
            text, calls = await _turn_once(pipe, request, out)
            if not calls:
                break
            messages.append(
                {
                    "role": "assistant",
                    "content": text,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                        }
                        for c in calls
                    ],
                }
            )
            for call in calls:
                result = _get_weather(**call.arguments)
                out.write(f"  tool> {call.name} returned: {result}\n")
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        out.write(f"\n{len(fake.requests)} requests served by the fake provider.\n")
    return 0


async def _turn_once(pipe: Pipeline, request: Request, out: TextIO) -> tuple[str, list[ToolCall]]:
    text: list[str] = []
    calls: list[ToolCall] = []
    out.write("assistant> ")
    async with pipe.stream(request) as events:
        async for ev in events:
            if isinstance(ev, TextDelta):
                text.append(ev.text)
                out.write(ev.text)
                out.flush()
            elif isinstance(ev, ToolCall):
                calls.append(ev)
                out.write(f"\n  tool call> {ev.name}({json.dumps(ev.arguments)}) [id {ev.id}]")
            elif isinstance(ev, Finish):
                out.write(
                    f"\n  finish> {ev.stop_reason}; tokens {ev.input_tokens} in"
                    f" ({ev.cached_tokens} cached) / {ev.output_tokens} out,"
                    f" usage from {ev.usage_source}\n"
                )
    return "".join(text).strip(), calls
