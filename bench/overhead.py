"""CPU cost per chunk of the pipeline's own stages (everything but dispatch), and of tracing.

Runs the default pipeline with a scripted dispatch over long streams, and,
in the same run, the scripted dispatch alone as the baseline; prints the
difference per chunk and the ratio. Usage: ``python bench/overhead.py``.

Also in the same run, three telemetry variants of the default pipeline:

- no telemetry (``instrument=PLAIN``);
- tracing off: the default telemetry instrument with no SDK set up (the
  OpenTelemetry API's no-op providers), as every user without tracing runs;
- tracing on: an SDK tracer provider exporting every span to memory.

Targets: (issue #2) <= 10 us/chunk for all non-dispatch stages together;
(issue #5) tracing off indistinguishable from no telemetry (< 1 us/chunk),
tracing on < 15 us/chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pipeline import Pipeline, Request, testing
from pipeline.context import Context
from pipeline.events import Chunk, Event
from pipeline.profiles import resolve
from pipeline.stage import PLAIN, Instrument
from telemetry import TelemetryInstrument

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


def measure(n: int, repeats: int) -> tuple[dict[str, float], int]:
    """Median CPU seconds per variant (alternating within each repeat); spans per traced call."""
    chunks = script(n)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    variants: dict[str, Instrument] = {
        "no telemetry": PLAIN,
        "tracing off": TelemetryInstrument(),  # what Pipeline.default() installs
        "tracing on": TelemetryInstrument(tracer_provider=provider),
    }
    times: dict[str, list[float]] = {"baseline": [], **{name: [] for name in variants}}
    spans = 0
    for _ in range(repeats):
        times["baseline"].append(cpu(lambda: run_dispatch_alone(chunks)))
        for name, instrument in variants.items():
            p = Pipeline.default(instrument=instrument).replace(
                "dispatch", testing.scripted([chunks])
            )
            exporter.clear()
            times[name].append(cpu(lambda: run_pipeline(p)))  # noqa: B023
            spans = max(spans, len(exporter.get_finished_spans()))
    return {name: statistics.median(t) for name, t in times.items()}, spans


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chunks", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    t, spans = measure(args.chunks, args.repeats)
    n = args.chunks

    def us(seconds: float) -> float:
        return seconds / n * 1e6

    base, plain, off, on = t["baseline"], t["no telemetry"], t["tracing off"], t["tracing on"]
    print(f"chunks per stream:            {n}")
    print(f"dispatch alone (baseline):    {us(base):6.2f} us/chunk CPU")
    print(f"default pipeline, scripted:   {us(off):6.2f} us/chunk CPU")
    print(f"pipeline's own stages:        {us(off - base):6.2f} us/chunk CPU  (target <= 10)")
    print(f"ratio pipeline / baseline:    {off / base:6.2f}x")
    print("telemetry, per chunk, against the same pipeline without telemetry:")
    print(f"  no telemetry:               {us(plain):6.2f} us/chunk CPU")
    print(f"  tracing off (no SDK):       {us(off - plain):+6.2f} us/chunk CPU  (target < 1)")
    print(
        f"  tracing on (in-memory):     {us(on - plain):+6.2f} us/chunk CPU  (target < 15;"
        f" {spans} spans per call)"
    )


if __name__ == "__main__":
    main()
