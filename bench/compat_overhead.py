"""CPU cost per chunk of the compat adapter (``pipeline.compat.LiteLLMProvider.stream``).

Runs the default pipeline with a scripted dispatch, consumed directly and
through the adapter, alternating within each repeat, and prints the median
extra CPU per chunk. The adapter's one cost that grows with the answer is
the reference's ``snapshot`` (all text so far, a new string on every delta),
so the stream lengths go from a typical answer to a very long one.
Usage: ``python bench/compat_overhead.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable

from pipeline import Pipeline, Request, testing
from pipeline.compat import LiteLLMProvider
from pipeline.events import Chunk

MESSAGES = [{"role": "user", "content": "hi"}]


def script(n: int) -> list[Chunk]:
    chunks = [Chunk(text=f"tok{i % 97} ", model="bench") for i in range(n)]
    return chunks + testing.text_chunks(finish="stop", usage=(100, n))


def scripted_pipeline(n: int) -> Pipeline:
    return Pipeline.default().replace("dispatch", testing.scripted([script(n)]))


async def direct(n: int) -> None:
    req = Request(model="openai/bench", messages=MESSAGES)
    async with scripted_pipeline(n).stream(req) as events:
        async for _ in events:
            pass


async def adapter(n: int) -> None:
    provider = LiteLLMProvider("openai/bench", pipeline=scripted_pipeline(n))
    async for _ in provider.stream(MESSAGES):
        pass


def cpu(fn: Callable[[int], Awaitable[None]], n: int) -> float:
    start = time.process_time()
    asyncio.run(fn(n))  # type: ignore[arg-type]
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'chunks':>8}  {'pipeline us/chunk':>18}  {'adapter us/chunk':>17}  {'extra':>8}")
    for n in (1_000, 10_000, 50_000):
        base: list[float] = []
        compat: list[float] = []
        for _ in range(args.repeats):
            base.append(cpu(direct, n))
            compat.append(cpu(adapter, n))
        b, c = statistics.median(base) / n * 1e6, statistics.median(compat) / n * 1e6
        print(f"{n:>8}  {b:>18.1f}  {c:>17.1f}  {c - b:>+8.1f}")


if __name__ == "__main__":
    main()
