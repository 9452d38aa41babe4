"""One benchmark client: ``python bench/clients.py STACK MODE PORT``, in a fresh process.

STACK is what streams the answer:

- ``floor``: aiohttp reading bytes, the direct backend's SSE splitter, msgspec
  decoding each event into typed Structs; nothing else (the least any Python
  client can do);
- ``openai``: the openai SDK (``AsyncOpenAI(...).chat.completions.create(stream=True)``);
- ``litellm``: ``litellm.acompletion(stream=True)``;
- ``llmpipe-litellm``: the default pipeline over the litellm backend;
- ``llmpipe-direct``: the default pipeline over the direct backend;
- ``llmpipe-litellm-frozen``: as ``llmpipe-litellm``, after ``gc.freeze()`` (what
  the ``llmpipe`` command does after start-up).

MODE is what is measured (the process prints one JSON object):

- ``import``: seconds to import what the stack needs to send, and the RSS after;
- ``main``: CPU per request (a one-delta answer), CPU per chunk (what a
  500-delta text answer, or two tool calls in 50 fragments each, costs beyond a
  one-delta answer, per chunk in between), time to first token, the CPU of a
  5,000-delta answer over a 500-delta one, chunks/s at 1, 50 and 200 streams;
- ``paced``: 200 streams at once, one event every 20 ms: each stream's time over
  the ideal, and the peak RSS;
- ``memory-N``: Python memory per live stream at its peak (``tracemalloc``), 10
  streams of N deltas at once, one every 10 ms;
- ``pair`` (STACK is ignored): litellm alone and llmpipe over litellm in one
  process, in turn, answer by answer: the ratio of their CPU per answer, and
  llmpipe's own CPU (outside litellm's calls) over litellm's.

CPU is the process's (``time.process_time``: every thread), pinned to CPU 0
(the server runs on CPU 1) when the machine has two.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

#: the server's event count per workload: role chunk + deltas + finish + usage + [DONE]
EVENTS = {"text-1": 5, "text-100": 104, "text-500": 504, "text-5000": 5004, "tools-2x50": 107}
MESSAGES = [{"role": "user", "content": "hi"}]
#: streams at once in the memory mode
MEMORY_STREAMS = 10
Stream = Callable[[str], Awaitable[float | None]]  # model -> seconds to the first content


# --- the stacks ----------------------------------------------------------------------------


async def floor(base: str) -> tuple[Stream, Callable[[], Awaitable[None]]]:
    import aiohttp
    import msgspec

    spec = importlib.util.spec_from_file_location("sse", ROOT / "stages/dispatch/openai/sse.py")
    assert spec is not None
    assert spec.loader is not None
    sse = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sse)

    sys.path.insert(0, str(ROOT / "bench"))
    from floor import decode  # type: ignore[import-not-found]

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000))
    url = base + "/chat/completions"
    headers = {"Authorization": "Bearer sk-bench", "Content-Type": "application/json"}

    async def stream(model: str) -> float | None:
        body = msgspec.json.encode(
            {
                "model": model,
                "messages": MESSAGES,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        start, first = time.perf_counter(), None
        async with session.post(url, data=body, headers=headers) as resp:
            splitter = sse.SSESplitter()
            while piece := await resp.content.readany():
                for _, data in splitter.feed(piece):
                    if data == b"[DONE]":
                        continue
                    chunk = decode(data)
                    if first is None and chunk.choices and chunk.choices[0].delta:
                        d = chunk.choices[0].delta
                        if d.content or d.tool_calls:
                            first = time.perf_counter() - start
        return first

    return stream, session.close


def _has_content(chunk: Any) -> bool:
    """Whether an OpenAI-shaped stream chunk (openai's, litellm's) carries answer content."""
    return bool(chunk.choices) and bool(
        chunk.choices[0].delta.content or chunk.choices[0].delta.tool_calls
    )


async def openai_sdk(base: str) -> tuple[Stream, Callable[[], Awaitable[None]]]:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=base, api_key="sk-bench", max_retries=0)

    async def stream(model: str) -> float | None:
        start, first = time.perf_counter(), None
        response = await client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},  # type: ignore[arg-type]
        )
        async for chunk in response:
            if first is None and _has_content(chunk):
                first = time.perf_counter() - start
        return first

    return stream, client.close


async def litellm_alone(base: str) -> tuple[Stream, Callable[[], Awaitable[None]]]:
    from stages.dispatch.litellm import close_loop_clients
    from stages.dispatch.litellm.loader import load_litellm

    litellm = load_litellm()

    async def stream(model: str) -> float | None:
        start, first = time.perf_counter(), None
        response = await litellm.acompletion(
            model="openai/" + model,
            messages=MESSAGES,
            api_base=base,
            api_key="sk-bench",
            stream=True,
            stream_options={"include_usage": True},
            max_retries=0,
        )
        async for chunk in response:
            if first is None and _has_content(chunk):
                first = time.perf_counter() - start
        return first

    async def close() -> None:
        await close_loop_clients()

    return stream, close


def llmpipe(
    backend: str,
) -> Callable[[str], Awaitable[tuple[Stream, Callable[[], Awaitable[None]]]]]:
    async def make(base: str) -> tuple[Stream, Callable[[], Awaitable[None]]]:
        from pipeline import Pipeline, Request
        from pipeline.events import TextDelta, ToolCall
        from pipeline.policy import RetryPolicy

        pipe = Pipeline.default(backend=backend, policy=RetryPolicy(max_in_flight=1000))
        if backend == "litellm":
            from stages.dispatch.litellm.loader import load_litellm

            load_litellm()

        async def stream(model: str) -> float | None:
            req = Request(
                model="openai/" + model, messages=MESSAGES, api_base=base, api_key="sk-bench"
            )
            start, first = time.perf_counter(), None
            async with pipe.stream(req) as events:
                async for ev in events:
                    if first is None and type(ev) in (TextDelta, ToolCall):
                        first = time.perf_counter() - start
            return first

        return stream, pipe.aclose

    return make


STACKS = {
    "floor": floor,
    "openai": openai_sdk,
    "litellm": litellm_alone,
    "llmpipe-litellm": llmpipe("litellm"),
    "llmpipe-direct": llmpipe("openai"),
    "llmpipe-litellm-frozen": llmpipe("litellm"),
}


# --- the measurements ------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def cpu_of(stream: Stream, model: str, times: int) -> tuple[float, list[float]]:
    """CPU seconds for ``times`` answers one after another, and their first-content times."""
    firsts: list[float] = []
    start = time.process_time()
    for _ in range(times):
        first = await stream(model)
        if first is not None:
            firsts.append(first)
    return time.process_time() - start, firsts


async def rate(stream: Stream, model: str, concurrent: int, rounds: int) -> float:
    """Chunks per second, ``concurrent`` streams at once, ``rounds`` times."""
    start = time.perf_counter()
    for _ in range(rounds):
        await asyncio.gather(*(stream(model) for _ in range(concurrent)))
    return EVENTS[model] * concurrent * rounds / (time.perf_counter() - start)


async def main_mode(stream: Stream) -> dict[str, Any]:
    await cpu_of(stream, "text-500", 3)  # warm: connections, caches, litellm's first-call setup
    fixed, _ = await cpu_of(stream, "text-1", 100)
    text, firsts = await cpu_of(stream, "text-500", 40)
    tools, _ = await cpu_of(stream, "tools-2x50", 40)
    longer, _ = await cpu_of(stream, "text-5000", 4)
    per_request = fixed / 100

    def per_chunk(cpu: float, times: int, model: str) -> float:
        """The CPU an answer costs beyond a one-delta answer, per chunk in between."""
        return (cpu / times - per_request) / (EVENTS[model] - EVENTS["text-1"]) * 1e6

    return {
        "cpu_us_per_chunk_text": per_chunk(text, 40, "text-500"),
        "cpu_us_per_chunk_tools": per_chunk(tools, 40, "tools-2x50"),
        "cpu_us_per_request": per_request * 1e6,
        "ttft_ms": statistics.median(firsts) * 1e3,
        "cpu_10x_ratio": (longer / 4) / (text / 40),
        "chunks_per_s_1": await rate(stream, "text-100", 1, 20),
        "chunks_per_s_50": await rate(stream, "text-100", 50, 2),
        "chunks_per_s_200": await rate(stream, "text-100", 200, 1),
    }


async def paced_mode(stream: Stream) -> dict[str, Any]:
    # 200 connections open first: what is measured is streaming, not 200 TCP handshakes
    await asyncio.gather(*(stream("text-1") for _ in range(200)))
    ideal = 50 * 0.02

    async def timed() -> float:
        start = time.perf_counter()
        await stream("paced-50")
        return time.perf_counter() - start

    times = sorted(await asyncio.gather(*(timed() for _ in range(200))))
    p95 = times[int(0.95 * len(times)) - 1]
    return {"paced_p95_over_ideal": p95 / ideal, "peak_rss_mb_200": peak_rss_mb()}


async def memory_mode(stream: Stream, deltas: int) -> dict[str, Any]:
    """Python memory held per live stream at its peak, traced (``tracemalloc``): 10
    streams of ``deltas`` deltas, one every 10 ms (paced, so nothing piles up in
    buffers: what grows with the answer's length is what a stack keeps per chunk)."""
    import tracemalloc

    model = f"paced-{deltas}-10"
    await asyncio.gather(*(stream("text-1") for _ in range(MEMORY_STREAMS)))
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await asyncio.gather(*(stream(model) for _ in range(MEMORY_STREAMS)))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {f"kb_per_stream_{deltas}": (peak - before) / 1024 / MEMORY_STREAMS}


#: answers per stack and workload in each round of the paired mode, and its rounds
PAIR_ANSWERS, PAIR_ROUNDS = 3, 12


class InLitellm:
    """The main thread's CPU spent inside litellm's own calls: ``acompletion`` and
    its stream's ``__anext__`` (each wrapped for the paired mode, whichever stack
    calls them). What a stack spends on the main thread outside them is its own
    code, the event loop's, and litellm's background tasks; the difference of that
    between llmpipe over litellm and litellm alone is llmpipe's own CPU."""

    def __init__(self, litellm: Any) -> None:
        from litellm.litellm_core_utils.streaming_handler import CustomStreamWrapper

        self.seconds = 0.0
        clock = time.thread_time
        call, step = litellm.acompletion, CustomStreamWrapper.__anext__

        async def acompletion(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return await call(*args, **kwargs)
            finally:
                self.seconds += clock() - start

        async def anext(stream: Any) -> Any:
            start = clock()
            try:
                return await step(stream)
            finally:
                self.seconds += clock() - start

        litellm.acompletion = acompletion
        CustomStreamWrapper.__anext__ = anext  # type: ignore[method-assign,assignment]


async def pair_mode(base: str) -> dict[str, Any]:
    """litellm alone and llmpipe over litellm in one process, in turn (the order
    swapped every round), so both run on the same heap, caches and machine state: the
    ratio of their CPU for the same answers, per round. Each block of answers starts
    from a full collection (not timed), so the collector's work in a block is that
    block's own (litellm's heap is large: a collection inherited from the other
    stack's allocations would swing a round by 20 %). Separate processes differ by
    more than the 5 % the target allows.

    Even so, single rounds swing by tens of percent, most of it inside litellm. So
    each block also counts the main thread's CPU inside litellm's calls
    (``InLitellm``): llmpipe's own CPU is what llmpipe over litellm spends outside
    them less what litellm alone does (the bench's loop, litellm's background
    tasks), and its ratio ``1 + own / (litellm alone)`` moves only with llmpipe's
    share, not with litellm's noise. That reading assumes litellm does the same work
    under llmpipe as alone; ``pair_litellm_*`` is the ratio of what it did (all the
    CPU but llmpipe's own), round by round, to check it."""
    from stages.dispatch.litellm.loader import load_litellm

    stacks = [await litellm_alone(base), await llmpipe("litellm")(base)]
    inside = InLitellm(load_litellm())
    for stream, _ in stacks:
        await cpu_of(stream, "text-500", 2)
        await cpu_of(stream, "tools-2x50", 2)
    ratios: dict[str, list[float]] = {"text-500": [], "tools-2x50": []}
    attributed: dict[str, list[float]] = {"text-500": [], "tools-2x50": []}
    own_us: dict[str, list[float]] = {"text-500": [], "tools-2x50": []}
    litellms: dict[str, list[float]] = {"text-500": [], "tools-2x50": []}
    for round_ in range(PAIR_ROUNDS):
        for model, found in ratios.items():
            cpu, outside = [0.0, 0.0], [0.0, 0.0]
            for which in (0, 1) if round_ % 2 == 0 else (1, 0):
                gc.collect()
                thread, within = time.thread_time(), inside.seconds
                cpu[which], _ = await cpu_of(stacks[which][0], model, PAIR_ANSWERS)
                outside[which] = time.thread_time() - thread - (inside.seconds - within)
            found.append(cpu[1] / cpu[0])
            own = outside[1] - outside[0]
            attributed[model].append(1 + own / cpu[0])
            own_us[model].append(own / PAIR_ANSWERS * 1e6)
            # litellm's own share in each block (all but the main thread outside its calls)
            litellms[model].append((cpu[1] - outside[1]) / (cpu[0] - outside[0]))
    for _, close in stacks:
        await close()
    out: dict[str, Any] = {}
    for model, what in (("text-500", "text"), ("tools-2x50", "tools")):
        out[f"pair_rounds_{what}"] = ratios[model]
        out[f"pair_attributed_{what}"] = attributed[model]
        out[f"pair_own_us_{what}"] = own_us[model]
        out[f"pair_litellm_{what}"] = litellms[model]
    return out


async def run(stack: str, mode: str, port: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}/v1"
    if mode == "pair":
        return await pair_mode(base)
    if mode == "import":
        start = time.perf_counter()
        stream, close = await STACKS[stack](base)
        took = time.perf_counter() - start
        await close()
        return {"import_s": took, "rss_mb_after_import": rss_mb()}
    stream, close = await STACKS[stack](base)
    if stack.endswith("-frozen"):
        gc.freeze()
    try:
        if mode == "main":
            return await main_mode(stream)
        if mode == "paced":
            return await paced_mode(stream)
        return await memory_mode(stream, int(mode.removeprefix("memory-")))
    finally:
        await close()


if __name__ == "__main__":
    if len(os.sched_getaffinity(0)) >= 2:
        os.sched_setaffinity(0, {0})
    stack_name, mode_name, port_text = sys.argv[1:4]
    print(json.dumps(asyncio.run(run(stack_name, mode_name, int(port_text)))))
