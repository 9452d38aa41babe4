"""One process of the shared-gate test: N calls through the default pipeline, gated in Redis.

Usage: python -m tests.scale.gate_worker BASE_URL TAG N CONCURRENCY RATE BURST
(the gate is ``LLMPIPE_GATE_URL``, as a deployment would set it). It imports
litellm and makes one call of its own (through an in-process gate: the
first call of a process is slow, and would bunch its followers), prints ``ready``, waits for a line on stdin (so every process starts
at once), makes its calls, and prints as one JSON object their answers and, on
``time.monotonic`` (one clock for every process of the machine): when it
paused the endpoint after a 429, and when each attempt left the gate (a stage
just before dispatch notes it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import AsyncIterator

from pipeline import Pipeline
from pipeline.context import Context
from pipeline.events import Event, Request
from pipeline.policy import RetryPolicy
from pipeline.runner import closing
from pipeline.stage import stage


class Paused(logging.Handler):
    """The retry segment logs its wait right after it paused the gate: note when."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "rate_limited" in record.getMessage():
            self.times.append(time.monotonic())


async def main(base_url: str, tag: str, n: int, concurrency: int, rate: float, burst: int) -> None:
    from stages.dispatch.litellm import import_litellm

    await import_litellm()
    warm = Pipeline.default(policy=RetryPolicy(gate="local"))
    await warm.acomplete(
        {
            "model": "openai/fake",
            "api_base": base_url,
            "messages": [{"role": "user", "content": f"warm-{tag}"}],
        }
    )
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    paused = Paused()
    logging.getLogger("llmpipe.retry").addHandler(paused)
    sent: list[tuple[str, float]] = []

    async def note(upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if isinstance(ev, Request):
                    last = ev.messages[-1]
                    content = last["content"] if isinstance(last, dict) else last.content
                    sent.append((str(content), time.monotonic()))
                yield ev

    pipe = Pipeline.default(
        policy=RetryPolicy(rate_per_s=rate, burst=burst, jitter=False)
    ).insert_before("dispatch", stage("note_sent", note))
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with limit:
            answer = await pipe.acomplete(
                {
                    "model": "openai/fake",
                    "api_base": base_url,
                    "messages": [{"role": "user", "content": f"{tag}-{i}"}],
                }
            )
            return answer.text

    try:
        texts = await asyncio.gather(*(one(i) for i in range(n)))
    finally:
        await pipe.aclose()
    print(json.dumps({"texts": texts, "paused": paused.times, "sent": sent}), flush=True)


if __name__ == "__main__":
    url, tag, n, conc, rate, burst = sys.argv[1:7]
    asyncio.run(main(url, tag, int(n), int(conc), float(rate), int(burst)))
