"""Fuzz: mutated real provider streams, thrown at the pipeline over real HTTP.

The recordings in ``tests/fixtures/realstreams`` (real OpenAI, Anthropic, Groq,
DeepSeek, Mistral, Alibaba and OpenRouter streams) are served by the fake
provider after seeded mutations: bytes flipped, cut, deleted, repeated or
swapped; events dropped, duplicated or reordered; JSON values replaced by values
of other types or by absurd nesting; junk, invalid UTF-8 and huge lines
inserted; chunked framing broken; the content type, the encoding header or the
status changed; the stream stalled or dropped. Every case must end in a
``Response`` or a ``pipeline.errors`` exception, within its time bound, with no
task left pending. The unmutated recordings are the control: they must give
their expected answers, so the harness itself is known to serve them right.

``FUZZ_CASES`` cases (seeded, so a failure names a case that can be replayed).
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections import Counter
from typing import Any

import pytest

from pipeline import Pipeline, Request, Response
from pipeline.errors import PipelineError
from pipeline.policy import RetryPolicy
from pipeline.testing import Drop, FakeProvider, Raw, RecordedRequest, Reply, Stall, Wire
from pipeline.testing.fakeprovider import Step
from stages.dispatch.litellm import close_loop_clients
from tests.e2e.conftest import warm_up
from tests.e2e.realstreams import ROOT, body_events, recordings

FUZZ_CASES = 300
SEED = 20251201
FIRST_S, IDLE_S = 1.0, 1.0
#: a mutated recording keeps at most its first and last events (litellm costs
#: ~0.4 ms per event; the 1,100-event recordings would dominate the run)
KEEP_HEAD, KEEP_TAIL = 30, 10
#: cases run at once (stalls overlap; and concurrency is part of the test)
AT_ONCE = 4
#: the longest one case may take (a stall costs one idle timeout; parsing is quick)
CASE_BOUND_S = 20.0
#: the whole fuzz run (a hang anywhere fails it long before the suite's patience)
RUN_BOUND_S = 240.0
TOOLS = [
    {"name": n, "parameters": {"type": "object", "properties": {}}}
    for n in (
        "weather",
        "json",
        "get_weather",
        "lookup",
        "get_current_weather",
        "search",
        "final_result",
        "getWeather",
    )
]

# litellm's pydantic models warn about wrong types before they raise; a warning is
# not an error in production, and must not become one here
pytestmark = pytest.mark.filterwarnings(
    "ignore:Pydantic serializer warnings:UserWarning", "ignore::RuntimeWarning"
)


def tools_for(entry: dict[str, Any]) -> list[dict[str, Any]]:
    expected = json.loads((ROOT / entry["expected"]).read_text())
    names = {c["name"] for c in expected["tool_calls"]} | {t["name"] for t in TOOLS[:2]}
    return [{"name": n, "parameters": {"type": "object", "properties": {}}} for n in sorted(names)]


# --- mutations -------------------------------------------------------------------------------

JUNK = [
    b"garbage\n\n",
    b":\n\n",
    b"data:\n\n",
    b"event: ping\n\n",
    b"data: {}\n\n",
    b"\n\n\n",
    b"data: [DONE]\n\n",
    b"id: 7\nretry: x\n\n",
]
ODD_VALUES: list[Any] = [
    None,
    0,
    -1,
    2**70,
    1.5,
    True,
    "",
    "x" * 5000,
    [],
    {},
    [1, "a"],
    {"a": {"b": [None]}},
]


def deep_json(rng: random.Random) -> bytes:
    """Absurd nesting, as JSON text (Python could not encode it)."""
    depth = rng.choice([50, 500, 5000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a": ', b"}")])
    return opener * depth + b"1" + closer * depth


def mutate_json(event: bytes, rng: random.Random) -> bytes:
    head, sep, payload = event.partition(b"data:")
    text = payload.strip()
    try:
        doc = json.loads(text)
    except ValueError:
        return event
    paths: list[tuple[Any, Any]] = []
    todo: list[Any] = [doc]
    while todo:
        node = todo.pop()
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in items:
            paths.append((node, key))
            todo.append(child)
    if not paths:
        return event
    node, key = rng.choice(paths)
    deep = rng.random() < 0.15
    node[key] = "__DEEP__" if deep else rng.choice(ODD_VALUES)
    encoded = json.dumps(doc).encode()
    if deep:
        encoded = encoded.replace(b'"__DEEP__"', deep_json(rng), 1)
    return head + sep + b" " + encoded + b"\n\n"


def mutate(events: list[bytes], rng: random.Random) -> tuple[list[bytes], dict[str, Any], str]:
    """One random mutation of the event list; also reply options; and its name."""
    kind = rng.choice(
        [
            "flip",
            "cut",
            "delete",
            "duplicate",
            "swap",
            "json",
            "json",
            "json",
            "junk",
            "utf8",
            "huge",
            "wire",
            "ctype",
            "gzip",
            "stall",
            "drop",
            "status",
            "deep",
            "deep-args",
        ]
    )
    ev = list(events)
    options: dict[str, Any] = {}
    i = rng.randrange(len(ev))
    if kind == "flip":
        b = bytearray(ev[i])
        for _ in range(rng.randint(1, 5)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        ev[i] = bytes(b)
    elif kind == "cut":
        ev = [*ev[:i], ev[i][: rng.randrange(len(ev[i]) + 1)]]
        options["framing"] = "close"
    elif kind == "delete":
        del ev[i]
    elif kind == "duplicate":
        ev.insert(i, ev[i])
    elif kind == "swap":
        j = rng.randrange(len(ev))
        ev[i], ev[j] = ev[j], ev[i]
    elif kind == "json":
        ev[i] = mutate_json(ev[i], rng)
    elif kind == "deep-args":  # tool-call arguments that are JSON nested too deep to parse
        nest = "[" * 5000 + "]" * 5000
        ev = [e.replace(b'"arguments":"', b'"arguments":"' + nest.encode(), 1) for e in ev]
        ev = [e.replace(b'"partial_json":"', b'"partial_json":"' + nest.encode(), 1) for e in ev]
    elif kind == "deep":
        ev.insert(
            i,
            b'data: {"choices": [{"delta": {"content": ' + deep_json(rng) + b"}}]}\n\n",
        )
    elif kind == "junk":
        ev.insert(i, rng.choice(JUNK))
    elif kind == "utf8":
        b = bytearray(ev[i])
        b[rng.randrange(len(b))] = rng.choice([0xFF, 0xFE, 0xC3, 0x80, 0xED])
        ev[i] = bytes(b)
    elif kind == "huge":
        ev.insert(
            i,
            b'data: {"choices": [{"index": 0, "delta": {"content": "'
            + b"y" * rng.choice([70_000, 600_000])
            + b'"}}]}\n\n',
        )
    elif kind == "wire":
        options["wire_at"] = i
        options["wire"] = rng.choice([b"garbage\r\n", b"ffff\r\n", b"\r\n\r\n", b"0\r\n\r\n"])
    elif kind == "ctype":
        options["content_type"] = rng.choice(
            [
                "text/html",
                "application/json",
                "text/plain",
                "application/octet-stream",
                "text/event-stream; charset=latin-1",
            ]
        )
    elif kind == "gzip":
        options["headers"] = {"content-encoding": rng.choice(["gzip", "br", "deflate"])}
    elif kind == "stall":
        options["stall_at"] = i
    elif kind == "drop":
        options["drop_at"] = i
    elif kind == "status":
        options["status"] = rng.choice([200, 400, 401, 404, 429, 500, 502, 503, 529])
    return ev, options, kind


def build_reply(events: list[bytes], options: dict[str, Any]) -> Reply:
    steps: list[Step] = [Raw(e) for e in events if e]
    for key, step in (("stall_at", Stall(None)), ("drop_at", Drop())):
        if key in options:
            steps.insert(min(options[key], len(steps)), step)
    if "wire_at" in options:
        steps.insert(min(options["wire_at"], len(steps)), Wire(options["wire"]))
    return Reply(
        tuple(steps),
        status=options.get("status", 200),
        headers={
            "content-type": options.get("content_type", "text/event-stream"),
            **options.get("headers", {}),
        },
        auto_end=False,
        framing=options.get("framing", "chunked"),
    )


def cases() -> list[tuple[str, dict[str, Any], Reply, bool]]:
    """(case id, recording, reply, is the control) for every case, from the seed."""
    rng = random.Random(SEED)
    entries = recordings()
    out = [(f"control-{e['id']}", e, build_reply(body_events(e), {}), True) for e in entries]
    while len(out) < FUZZ_CASES:
        entry = rng.choice(entries)
        events, options, kinds = body_events(entry), {}, []
        if len(events) > KEEP_HEAD + KEEP_TAIL:  # long recordings: their start and end
            events = events[:KEEP_HEAD] + events[-KEEP_TAIL:]
        for _ in range(rng.choice([1, 1, 2, 3])):
            events, more, kind = mutate(events, rng)
            options.update(more)
            kinds.append(kind)
        out.append(
            (
                f"{len(out)}-{entry['id']}-{'+'.join(kinds)}",
                entry,
                build_reply(events, options),
                False,
            )
        )
    return out


async def run_case(
    pipe: Pipeline, fake: FakeProvider, n: int, entry: dict[str, Any]
) -> tuple[Response | PipelineError, float]:
    anthropic = entry["format"] == "anthropic"
    req = Request(
        model=f"{'anthropic' if anthropic else 'openai'}/case-{n}",
        messages=[{"role": "user", "content": "hi"}],
        tools=tools_for(entry),
        api_base=fake.root_url if anthropic else fake.base_url,
        api_key="sk-fuzz-key-not-real",
    )
    start = time.monotonic()
    try:
        async with asyncio.timeout(CASE_BOUND_S):
            outcome: Response | PipelineError = await pipe.acomplete(req)
    except PipelineError as exc:
        outcome = exc
    return outcome, time.monotonic() - start


@pytest.mark.parametrize("backend", ["litellm", "auto"])
async def test_mutated_real_streams_always_end_typed(fake: FakeProvider, backend: str) -> None:
    """``auto``: the OpenAI-format cases through the direct backend, the rest through litellm."""
    all_cases = cases()
    assert len(all_cases) == FUZZ_CASES
    replies = {f"case-{n}": reply for n, (_, _, reply, _) in enumerate(all_cases)}

    def respond(r: RecordedRequest) -> Reply:
        return replies[r.body["model"]]

    await warm_up(fake)
    fake.respond_with(respond)
    pipe = Pipeline.default(
        backend=backend,
        policy=RetryPolicy(
            rate_limit_retries=0,
            transient_retries=0,
            empty_retries=0,
            first_chunk_timeout_s=FIRST_S,
            idle_timeout_s=IDLE_S,
        ),
    )
    kinds: Counter[str] = Counter()
    slowest = 0.0
    run_start = time.monotonic()
    for batch in range(0, FUZZ_CASES, AT_ONCE):
        numbered = list(enumerate(all_cases))[batch : batch + AT_ONCE]
        results = await asyncio.gather(
            *(run_case(pipe, fake, n, entry) for n, (_, entry, _, _) in numbered),
            return_exceptions=True,
        )
        for (_, (case_id, entry, _, control)), result in zip(numbered, results, strict=True):
            if isinstance(result, TimeoutError):
                pytest.fail(f"case {case_id} hung for {CASE_BOUND_S}s")
            if isinstance(result, BaseException):  # anything not typed is a failure
                pytest.fail(f"case {case_id} raised {type(result).__name__}: {result!r:.300}")
            outcome, took = result
            slowest = max(slowest, took)
            kinds[type(outcome).__name__] += 1
            if control:
                expected = json.loads((ROOT / entry["expected"]).read_text())
                assert isinstance(outcome, Response), f"{case_id}: {outcome!r}"
                assert outcome.text == expected["text"], case_id
                names = [c.name for c in outcome.tool_calls]
                assert names == [c["name"] for c in expected["tool_calls"]], case_id
        pending = [
            t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()
        ]
        if pending:  # litellm's own logging tasks finish by themselves
            _, still = await asyncio.wait(pending, timeout=2.0)
            assert not still, f"cases {batch}..{batch + AT_ONCE} left tasks pending: {still}"
        assert time.monotonic() - run_start < RUN_BOUND_S
    await pipe.aclose()
    await close_loop_clients()
    # the fuzz reached both outcomes, and several kinds of error
    assert kinds["Response"] > 0 and sum(kinds.values()) == FUZZ_CASES
    assert len(kinds) >= 4, kinds
    print(
        f"\nfuzz: {FUZZ_CASES} cases in {time.monotonic() - run_start:.1f}s, slowest {slowest:.2f}s: {dict(kinds)}"
    )
