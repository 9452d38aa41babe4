"""CPU cost per chunk of the pipeline's own stages (everything but dispatch).

Runs the default pipeline with a scripted dispatch over long streams, and,
in the same run, the scripted dispatch alone as the baseline; prints the
difference per chunk and the ratio. Usage: ``python bench/overhead.py``.

Target (issue #2): <= 10 us/chunk for all non-dispatch stages together.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator

from pipeline import Pipeline, Request, testing
from pipeline.events import Chunk, Event
from pipeline.profiles import resolve
from pipeline.stage import Context

REQ = Request(model="openai/bench", messages=[{"role": "user", "content": "hi"}], system="be brief")


def script(n: int) -> list[Chunk]:
    chunks = [Chunk(text=f"tok{i % 97} ", model="bench") for i in range(n)]
    return chunks + testing.text_chunks(finish="stop", usage=(100, n))


async def run_pipeline(p: Pipeline) -> int:
    count = 0
    async with p.stream(REQ) as events:
        async for _ in events:
            count += 1
    return count


async def run_dispatch_alone(chunks: list[Chunk]) -> int:
    dispatch = testing.scripted([chunks])
    ctx = Context(request=REQ, profile=resolve(REQ.model))

    async def source() -> AsyncIterator[Event]:
        yield REQ

    count = 0
    async for _ in dispatch(source(), ctx):
        count += 1
    return count


def cpu(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.process_time()
    asyncio.run(fn())
    return time.process_time() - start


def measure(n: int, repeats: int) -> tuple[float, float]:
    chunks = script(n)
    base = []
    full = []
    for _ in range(repeats):
        base.append(cpu(lambda: run_dispatch_alone(chunks)))
        p = Pipeline.default().replace("dispatch", testing.scripted([chunks]))
        full.append(cpu(lambda: run_pipeline(p)))  # noqa: B023
    return statistics.median(base), statistics.median(full)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    base, full = measure(args.chunks, args.repeats)
    per_chunk = (full - base) / args.chunks * 1e6
    print(f"chunks per stream:            {args.chunks}")
    print(f"dispatch alone (baseline):    {base / args.chunks * 1e6:6.2f} us/chunk CPU")
    print(f"default pipeline, scripted:   {full / args.chunks * 1e6:6.2f} us/chunk CPU")
    print(f"pipeline's own stages:        {per_chunk:6.2f} us/chunk CPU  (target <= 10)")
    print(f"ratio pipeline / baseline:    {full / base:6.2f}x")


if __name__ == "__main__":
    main()
