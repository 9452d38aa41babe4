"""``llmpipe demo``: a scripted session through the full default pipeline, offline.

The built-in fake provider plays the model on 127.0.0.1; everything else is
the real thing: HTTP, streaming, every stage, and the backend the default
pipeline chooses (direct HTTP, since the fake speaks OpenAI chat-completions;
``--backend litellm`` for litellm). The script shows what
the pipeline is for: text streamed as it arrives, a tool call, a 429 with
``retry-after-ms`` that the retry stage waits out, and an empty answer that
it asks again for. It takes about two seconds (the waits are real, and short).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TextIO

from pipeline.cli.shared import pipeline_for, prepare
from pipeline.events import Finish, ReasoningDelta, Retrying, TextDelta, ToolCall
from pipeline.pipeline import Pipeline
from pipeline.policy import RetryPolicy
from pipeline.request import Request, ToolSpec
from pipeline.response import ResponseBuilder
from pipeline.testing.fakeprovider import (
    FakeProvider,
    FinishStep,
    Reasoning,
    Reply,
    Stall,
    Text,
    ToolDelta,
    UsageStep,
)

__all__ = ["SCRIPT", "demo", "run_demo"]

MODEL = "openai/demo-model"
WEATHER = ToolSpec(
    name="get_weather",
    description="Current weather for a city",
    parameters={"properties": {"city": {"type": "string"}}, "required": ["city"]},
)
QUESTION = "What's the weather in Paris?"
PAUSE = Stall(0.03)  # so the stream is visibly a stream
RETRY_AFTER_MS = 400
#: the demo's retry policy: the defaults, with a short wait after an empty answer
POLICY = RetryPolicy(empty_delay_s=0.3)


def _streamed(text: str, *tail: Any) -> tuple[Any, ...]:
    steps: list[Any] = []
    for word in text.split(" "):
        steps += [Text(word + " "), PAUSE]
    return (*steps, *tail)


#: what the fake provider answers, request by request, and what that shows
SCRIPT: list[tuple[Reply, str]] = [
    (
        Reply.error(
            429,
            "Rate limit reached for demo-model (requests per minute)",
            headers={"retry-after-ms": str(RETRY_AFTER_MS)},
            type="rate_limit_error",
        ),
        f"429 Too Many Requests, retry-after-ms: {RETRY_AFTER_MS}"
        f" -> the retry stage waited {RETRY_AFTER_MS / 1000:.1f}s and asked again",
    ),
    (
        Reply(
            _streamed(
                "Let me check the weather for you.",
                ToolDelta(index=0, id="call_weather_1", name="get_weather", arguments='{"city": '),
                PAUSE,
                ToolDelta(index=0, arguments='"Paris"}'),
                FinishStep("tool_calls"),
                UsageStep(52, 18),
            )
        ),
        "streamed text and a tool call in two fragments -> reassembled, the tool ran",
    ),
    (
        Reply.empty(),
        f"an empty answer (no text, no tool call) -> empty_check raised EmptyResponse,"
        f" the retry stage waited {POLICY.empty_delay_s:.1f}s and asked again",
    ),
    (
        Reply(
            (
                Reasoning("The tool says 18 °C and sunny. "),
                PAUSE,
                *_streamed(
                    "It is 18 °C and sunny in Paris right now: a good day for a walk.",
                    FinishStep("stop"),
                    UsageStep(87, 16, cached_tokens=52),
                ),
            )
        ),
        "reasoning, then the streamed answer, with usage (52 tokens cached)",
    ),
]


def _get_weather(city: str) -> str:
    return f"{city}: 18 °C, sunny, light wind"


async def run_demo(
    out: TextIO,
    *,
    pipe: Pipeline | None = None,
    prepare: Callable[[], Awaitable[object]] | None = None,
    loading: bool = False,
) -> int:
    """Run the session, printing it to ``out``; ``prepare`` runs first (the CLI
    imports litellm there when the pipeline sends through it, so the session's
    timings are the calls' own; ``loading`` says so first)."""
    pipe = pipe or Pipeline.default(policy=POLICY)
    if prepare is not None:
        if loading:
            out.write("llmpipe demo: loading litellm...\n")
            out.flush()
        await prepare()
    with FakeProvider() as fake:
        fake.script(*(reply for reply, _ in SCRIPT))
        out.write(f"llmpipe demo: fake provider at {fake.base_url} (no keys, no network)\n")
        out.write(f"pipeline: {pipe!r}\n\n")
        messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
        out.write(f"user> {QUESTION}\n")
        for _turn in range(4):
            request = Request(
                model=MODEL,
                messages=messages,
                system="You are a concise assistant.",
                tools=[WEATHER],
                api_base=fake.base_url,
                api_key="demo-key-not-a-secret",
            )
            text, calls = await _turn_once(pipe, request, out)
            if not calls:
                break
            messages.append(_assistant_turn(text, calls))
            for call in calls:
                result = _get_weather(**call.arguments)
                out.write(f"  tool> {call.name} returned: {result}\n")
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        requests = fake.requests
    served = len(requests)
    out.write(f"\nwhat happened ({served} requests served by the fake provider):\n")
    for n, (_, what) in enumerate(SCRIPT[:served], start=1):
        out.write(f"  {n}. {what}\n")
    if requests:  # from the first request (importing litellm before it takes seconds)
        out.write(f"the session took {time.monotonic() - requests[0].received_at:.1f}s.\n")
    out.flush()
    return 0


def _assistant_turn(text: str, calls: list[ToolCall]) -> dict[str, Any]:
    return {
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


async def _turn_once(pipe: Pipeline, request: Request, out: TextIO) -> tuple[str, list[ToolCall]]:
    answer = ResponseBuilder()
    line_open = False  # an "assistant>" or "thinking>" line is being written

    def start(prefix: str) -> None:
        nonlocal line_open
        if line_open:
            out.write("\n")
        out.write(prefix)
        line_open = True

    def end() -> None:
        nonlocal line_open
        if line_open:
            out.write("\n")
            line_open = False

    speaking = thinking = False
    async with pipe.stream(request) as events:
        async for ev in events:
            answer.feed(ev)
            if isinstance(ev, TextDelta):
                if not speaking:
                    start("assistant> ")
                    speaking, thinking = True, False
                out.write(ev.text)
            elif isinstance(ev, ReasoningDelta):
                if not thinking:
                    start("  thinking> ")
                    thinking, speaking = True, False
                out.write(ev.text)
            elif isinstance(ev, ToolCall):
                end()
                out.write(f"  tool call> {ev.name}({json.dumps(ev.arguments)}) [id {ev.id}]\n")
            elif isinstance(ev, Retrying):
                end()
                out.write(
                    f"  retry> attempt {ev.attempt}: {_REASONS.get(ev.reason, ev.reason)};"
                    f" waiting {ev.delay_s:.1f}s, then asking again\n"
                )
            elif isinstance(ev, Finish):
                end()
                out.write(
                    f"  finish> {ev.stop_reason}; tokens {ev.input_tokens} in"
                    f" ({ev.cached_tokens} cached) / {ev.output_tokens} out,"
                    f" usage from {ev.usage_source}\n"
                )
            out.flush()
    end()
    return answer.text.strip(), answer.tool_calls


_REASONS = {
    "rate_limited": "rate limited (HTTP 429)",
    "empty": "empty answer",
    "transient": "transient failure",
}


async def demo(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The ``llmpipe demo`` command: the session on the default pipeline, ``--trace`` applied."""
    async with pipeline_for(args, policy=POLICY) as pipe:
        # the fake provider speaks OpenAI chat-completions: "auto" sends to it directly
        loading = args.backend == "litellm"
        return await run_demo(
            out, pipe=pipe, prepare=lambda: prepare(args, MODEL, None, err), loading=loading
        )
