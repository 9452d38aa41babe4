"""The direct backend and the litellm backend, scenario by scenario: the same outcome.

Every fake-provider scenario (OpenAI format: the direct backend speaks only
that) runs through the default pipeline twice, once over each backend, on
virtual time with the same small retry budgets. Each run is reduced to what a
caller sees: the events (text and reasoning deltas, tool calls, the finish
with its usage and usage source, the retries with their waits), or the error
(its class, its cause's class, status, transience, Retry-After headers, and
the provider's words where the provider sent some), and the number of
requests the server saw. The two must be equal.

Where the direct backend is deliberately better, the scenario says so in
``BETTER``: what each backend gives, and why the difference is wanted. Those
are asserted too, for both backends, so a change in either shows.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pytest

from pipeline import Pipeline, Request
from pipeline.errors import PipelineError, ProviderError, RetriesExhausted
from pipeline.events import Event, Finish, ReasoningDelta, Retrying, TextDelta, TextEnd, ToolCall
from pipeline.policy import RetryPolicy
from pipeline.testing import (
    Drop,
    FakeClock,
    FakeProvider,
    FinishStep,
    Raw,
    Reasoning,
    Reply,
    Stall,
    Text,
    ToolDelta,
    UsageStep,
)
from tests.e2e import test_malformed_output_e2e as malformed
from tests.e2e.conftest import warm_up
from tests.e2e.test_resilience_e2e import GROQ_ERROR_EVENT
from tests.helpers import closed_port

pytestmark = pytest.mark.filterwarnings("ignore:Pydantic serializer warnings:UserWarning")

#: the stall scenarios wait out these timeouts for real, so they are short; the others
#: get room for a loaded machine (litellm takes a while to send its first request)
STALLING = RetryPolicy(
    rate_limit_retries=2,
    transient_retries=1,
    empty_retries=1,
    first_chunk_timeout_s=1.0,
    idle_timeout_s=0.3,
    jitter=False,
)
POLICY = dataclasses.replace(STALLING, first_chunk_timeout_s=30.0, idle_timeout_s=30.0)
TOOLS = [{"name": n, "parameters": {"type": "object", "properties": {}}} for n in ("f", "g")]


def sse(payload: Any) -> bytes:
    return malformed.sse(payload)


def delta(d: dict[str, Any], finish: Any = None, **extra: Any) -> bytes:
    return malformed.chunk(d, finish, **extra)


DONE = malformed.DONE
USAGE = {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


@dataclass(frozen=True)
class Scenario:
    name: str
    replies: tuple[Reply, ...]
    #: the server answers every request with the first reply (else: one each, in order)
    every: bool = False
    request: dict[str, Any] = field(default_factory=dict)


def s(
    name: str,
    *replies: Reply,
    every: bool = False,
    request: dict[str, Any] | None = None,
    **fields: Any,
) -> Scenario:
    return Scenario(name, replies, every, {**(request or {}), **fields})


TEXT = Reply.text("Hel", "lo", " world")
SCENARIOS: list[Scenario] = [
    # --- answers
    s("text", TEXT),
    s(
        "text, usage on the finish chunk",
        Reply.text("a", usage=UsageStep(11, 7), usage_after_finish=False),
    ),
    s("usage before the content", Reply(steps=(UsageStep(12, 3), Text("a"), FinishStep("stop")))),
    s(
        "cached tokens in prompt_tokens_details",
        Reply.text("a", usage=UsageStep(20, 2, cached_tokens=15)),
    ),
    s(
        "cache_read_input_tokens",
        Reply.text("a", usage=UsageStep(20, 2, cache_read_input_tokens=9)),
    ),
    s(
        "usage on every chunk",
        Reply.raw(
            delta({"content": "a"}, usage=USAGE),
            delta({"content": "b"}, usage=USAGE),
            delta({}, "stop", usage=USAGE),
            DONE,
        ),
    ),
    s("no usage from the provider", Reply.text("Hello there", usage=None)),
    s(
        "reasoning_content, then text",
        Reply(steps=(Reasoning("let me think"), Text("42"), FinishStep("stop"), UsageStep(3, 2))),
    ),
    s(
        "delta.reasoning (Groq, OpenRouter)",
        Reply.raw(delta({"reasoning": "hmm"}), delta({"content": "ok"}), delta({}, "stop"), DONE),
    ),
    s("a tool call", Reply.tool_calls(("call_1", "f", {"location": "Paris"}))),
    s("parallel tool calls", Reply.tool_calls(("a", "f", {"q": 1}), ("b", "g", {"p": "/x"}))),
    s(
        "every call at index 0 (a bridge)",
        Reply(
            steps=(
                ToolDelta(index=0, id="call_A", name="f", arguments=""),
                ToolDelta(index=0, arguments='{"city":'),
                ToolDelta(index=0, arguments='"Paris"}'),
                ToolDelta(index=0, id="call_B", name="f", arguments=""),
                ToolDelta(index=0, arguments='{"city":"Rome"}'),
                FinishStep("tool_calls"),
                UsageStep(10, 5),
            )
        ),
    ),
    s(
        "tool calls without an index (Mistral)",
        Reply(
            steps=(
                ToolDelta(index=None, id="A", name="f", arguments='{"a":'),
                ToolDelta(index=None, arguments="1}"),
                ToolDelta(index=None, id="B", name="g", arguments="{}"),
                FinishStep("tool_calls"),
            )
        ),
    ),
    s(
        "an empty id on later fragments (Alibaba)",
        Reply(
            steps=(
                ToolDelta(index=0, id="call_x", name="f", arguments='{"a"'),
                ToolDelta(index=0, id="", name="", arguments=": 2}"),
                FinishStep("tool_calls"),
            )
        ),
    ),
    s(
        "truncated arguments, repaired",
        Reply(
            steps=(
                ToolDelta(index=0, id="c", name="f", arguments='{"q":"x","o":["3-act","R"'),
                FinishStep("length"),
                UsageStep(5, 5),
            )
        ),
    ),
    s("unrepairable arguments", Reply.tool_calls(("ok", "f", {}), ("bad", "g", '{"q": foo'))),
    s(
        "text, then a malformed tool call",
        Reply(
            (Text("Calling it now."), ToolDelta(0, "c1", "f", "[1, 2"), FinishStep("tool_calls"))
        ),
    ),
    s("an empty answer, then text", Reply.empty(), Reply.text("there you go")),
    s("always empty", Reply.empty(), every=True),
    s("length with no content", Reply.empty(finish="length")),
    s("no finish reason, then [DONE]", Reply((Text("x"),))),
    s(
        "a refusal",
        Reply.raw(
            delta({"role": "assistant", "content": None, "refusal": "I can't"}),
            delta({"refusal": " help with that."}),
            delta({}, "stop"),
            DONE,
        ),
    ),
    # --- errors by status, with the provider's words
    s(
        "429 retry-after-ms, then text",
        Reply.error(429, "slow down", headers={"retry-after-ms": "1500"}),
        TEXT,
    ),
    s(
        "429 retry-after seconds, then text",
        Reply.error(429, "slow", headers={"retry-after": "2"}),
        TEXT,
    ),
    s(
        "429 retry-after an HTTP-date, then text",
        Reply.error(429, "slow", headers={"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        TEXT,
    ),
    s("429 always", Reply.error(429, "slow down", headers={"retry-after": "1"}), every=True),
    s("400", Reply.error(400, "temperature: must be <= 2")),
    s(
        "400 context window",
        Reply.error(
            400,
            "This model's maximum context length is 8192 tokens",
            code="context_length_exceeded",
        ),
    ),
    s(
        "400 content policy",
        Reply.error(
            400, "Your request was rejected by our safety system", code="content_policy_violation"
        ),
    ),
    s("401", Reply.error(401, "Incorrect API key provided: sk-test-key-not-real")),
    s("403", Reply.error(403, "not for you")),
    s("404", Reply.error(404, "no model 'x'")),
    s("408, then text", Reply.error(408, "timed out"), TEXT),
    s("409, then text", Reply.error(409, "conflict"), TEXT),
    s("413", Reply.error(413, "too large")),
    s("422", Reply.error(422, "unprocessable")),
    s("500, 502, then text", Reply.error(500, "a"), Reply.error(502, "b"), TEXT),
    s("503 always", Reply.error(503, "overloaded"), every=True),
    s("504, then text", Reply.error(504, "gateway timeout"), TEXT),
    s("529 always", Reply.error(529, "overloaded"), every=True),
    # --- the connection
    s("a drop before content, then text", Reply(steps=(Drop(),)), TEXT),
    s(
        "a drop mid-stream before text, then text",
        Reply(steps=(ToolDelta(index=0, id="c", name="f", arguments='{"a"'), Drop())),
        TEXT,
    ),
    s("a drop after content", Reply(steps=(Text("Hello "), Text("wor"), Drop())), TEXT),
    s("a stall before content, then text", Reply(steps=(Stall(None),)), TEXT),
    s("a stall after content", Reply(steps=(Text("partial "), Stall(None))), TEXT),
    s(
        "an error event after reasoning (Groq)",
        Reply((Reasoning("Let me think"), Reasoning(" about it."), Raw(GROQ_ERROR_EVENT))),
        model="groq/fake-model",
    ),
    s("connection refused", request={"api_base": f"http://127.0.0.1:{closed_port()}/v1"}),
    # --- what litellm loses
    s(
        "the model the provider names",
        Reply.raw(
            delta({"role": "assistant", "content": "Hi"}, model="gpt-4o-2024-08-06"),
            delta({}, "stop", model="gpt-4o-2024-08-06"),
            sse({"id": "c", "choices": [], "usage": USAGE, "model": "gpt-4o-2024-08-06"}),
            DONE,
        ),
    ),
    s(
        "list-of-parts content (Mistral)",
        Reply.raw(
            delta(
                {"content": [{"type": "thinking", "thinking": [{"type": "text", "text": "Hmm."}]}]}
            ),
            delta({"content": [{"type": "text", "text": "Paris"}]}),
            delta({}, "stop", usage=USAGE),
            DONE,
        ),
        every=True,
    ),
    s(
        "a JSON completion with 200",
        Reply.raw(
            b'{"id": "c", "object": "chat.completion", "model": "m-2025", "choices": [{"index": 0,'
            b' "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}],'
            b' "usage": {"prompt_tokens": 4, "completion_tokens": 1}}',
            content_type="application/json",
        ),
        every=True,
    ),
]
# --- hostile output: the malformed-output matrix's OpenAI cases
SCENARIOS += [
    s(f"malformed: {name}", reply, every=True)
    for name, api, reply, *_ in malformed.CASES
    if api == "openai"
]

#: where the direct backend is deliberately better: scenario -> why, and what each
#: backend gives (``facts``); every other field of the outcome must still agree
BETTER: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "a refusal": (
        "a refusal is the answer's text; litellm keeps only its first delta (it drops"
        " chunks without content), the direct backend all of it",
        {"text": "I can't", "error": None},
        {"text": "I can't help with that.", "error": None},
    ),
    "list-of-parts content (Mistral)": (
        "litellm drops content sent as typed parts, so the answer looks empty and is"
        " retried; the direct backend reads text parts as text, thinking parts as reasoning",
        {"text": "", "error": "EmptyResponse", "exhausted": True, "requests": 2},
        {"text": "Paris", "reasoning": "Hmm.", "error": None, "requests": 1},
    ),
    "a JSON completion with 200": (
        "a server that ignores stream=true answers with one chat.completion: the direct"
        " backend reads it as the whole answer; litellm refuses it as not a stream",
        {"error": "MalformedResponse", "requests": 1},
        {"text": "whole", "model": "m-2025", "error": None, "requests": 1},
    ),
    "malformed: a JSON document with 200": (
        "read as a whole answer (above): this one is a completion with no choices, an"
        " empty answer, retried as one",
        {"error": "MalformedResponse", "requests": 1},
        {"error": "EmptyResponse", "exhausted": True, "requests": 2},
    ),
    "malformed: content a number (litellm drops it)": (
        "a field of the wrong type is a typed error naming it, not silently dropped (which"
        " makes an empty answer, retried for nothing)",
        {"error": "EmptyResponse", "exhausted": True, "requests": 2},
        {"error": "MalformedResponse", "exhausted": False, "requests": 1},
    ),
    "malformed: tool call index a string (litellm drops it)": (
        "as above: the wrong type is named, not dropped",
        {"error": "EmptyResponse", "exhausted": True, "requests": 2},
        {"error": "MalformedResponse", "exhausted": False, "requests": 1},
    ),
    "malformed: finish reason a number": (
        "as above: litellm turns 7 into 'stop' (with a warning); the direct backend says"
        " the answer cannot be read, keeping the text delivered in the interruption",
        {"text": "ok", "error": None},
        {"text": "ok", "error": "StreamInterrupted", "cause": "MalformedResponse"},
    ),
    "400 content policy": (
        "the provider's error code says its content policy refused the request:"
        " ContentFiltered, as the README promises; litellm's OpenAI route says BadRequest",
        {"error": "BadRequest", "status": 400},
        {"error": "ContentFiltered", "status": 400},
    ),
    "malformed: an SSE error event first": (
        "an error event inside a 200 stream has no HTTP status: litellm labels it 500",
        {"error": "ProviderUnavailable", "status": 500},
        {"error": "ProviderUnavailable", "status": None},
    ),
}


def facts(outcome: dict[str, Any]) -> dict[str, Any]:
    """What ``BETTER`` compares: the answer's text, reasoning and model, the error."""
    events = outcome["events"]
    error = outcome.get("error") or {}
    finish = [e for e in events if isinstance(e, Finish)]
    return {
        "text": "".join(e.text for e in events if isinstance(e, TextDelta)),
        "reasoning": "".join(e.text for e in events if isinstance(e, ReasoningDelta)),
        "model": finish[0].model if finish else None,
        "error": error.get("class"),
        "exhausted": error.get("exhausted"),
        "cause": error.get("cause"),
        "status": error.get("status"),
        "requests": outcome["requests"],
    }


# --- running a scenario -------------------------------------------------------------------


def summary(events: list[Event]) -> list[Any]:
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, Finish) and ev.usage_source == "estimated":
            out.append(("finish", ev.stop_reason, ev.model, "estimated"))  # counts: each its own
        elif isinstance(ev, TextDelta | ReasoningDelta | TextEnd | ToolCall | Retrying | Finish):
            out.append(ev)
    return out


def error_summary(exc: PipelineError) -> dict[str, Any]:
    out: dict[str, Any] = {
        "class": exc.cause_class.__name__
        if isinstance(exc, RetriesExhausted) and exc.cause_class
        else type(exc).__name__,
        "exhausted": isinstance(exc, RetriesExhausted),
        "cause": type(exc.__cause__).__name__ if isinstance(exc.__cause__, PipelineError) else None,
        "transient": getattr(exc, "transient", None),
        "status": getattr(exc, "status_code", None),
        "retry-after": {
            k: v for k, v in getattr(exc, "headers", {}).items() if k.startswith("retry-after")
        },
    }
    if isinstance(exc, ProviderError) and exc.status_code is not None:
        out["message"] = str(exc)
    return out


async def run(backend: str, scenario: Scenario, fake: FakeProvider) -> dict[str, Any]:
    fake.reset()
    if scenario.every:
        fake.respond_with(lambda r: scenario.replies[0])
    else:
        fake.script(*scenario.replies)
    clock = FakeClock()
    stalls = any(
        reply.delay or any(isinstance(step, Stall) for step in reply.steps)
        for reply in scenario.replies
    )
    policy = STALLING if stalls else POLICY
    pipe = Pipeline.default(backend=backend, sleep=clock.sleep, clock=clock.time, policy=policy)
    req = Request(
        **{
            "model": "openai/fake-model",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": TOOLS,
            "api_base": fake.base_url,
            "api_key": "sk-test-key-not-real",
            **scenario.request,
        }
    )
    events: list[Event] = []
    result: dict[str, Any] = {}
    try:
        async with asyncio.timeout(60), pipe, pipe.stream(req) as stream:
            async for ev in stream:
                events.append(ev)
    except PipelineError as exc:
        result["error"] = error_summary(exc)
    result["events"] = summary(events)
    result["requests"] = len(fake.requests)
    result["sleeps"] = clock.sleeps
    return result


def test_every_difference_is_a_scenario() -> None:
    assert set(BETTER) <= {sc.name for sc in SCENARIOS}


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[sc.name for sc in SCENARIOS])
async def test_both_backends_give_the_same_outcome(fake: FakeProvider, scenario: Scenario) -> None:
    await warm_up(fake)
    litellm = await run("litellm", scenario, fake)
    direct = await run("openai", scenario, fake)
    if scenario.name not in BETTER:
        assert direct == litellm
        return
    _why, from_litellm, from_direct = BETTER[scenario.name]
    assert {k: facts(litellm)[k] for k in from_litellm} == from_litellm
    assert {k: facts(direct)[k] for k in from_direct} == from_direct
    assert direct != litellm  # still a difference: when litellm catches up, this says so
