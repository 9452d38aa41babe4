"""What scaling out costs: the Ray engine's per-call overhead, and the gate's cost per acquire.

1. The same batch against the loopback fake provider (instant answers; in a
   process of its own, so it takes no CPU from the callers' processes), run
   by the local engine and by the Ray engine (a local cluster): one call at
   a time (one worker), the wall time per call less the time the call spent
   in the pipeline (``elapsed_s``, measured where it ran) is what each engine
   adds around a call; for Ray that is driver -> actor -> driver. At
   ``--concurrency`` calls at once (Ray: 2 workers), the throughput of each.
2. Entering and leaving one endpoint's gate (``slot``): the in-process gate,
   the Redis gate (one Lua script, one loopback round trip), and the Redis
   gate with a token bucket; microseconds per acquire.

Needs ``llmpipe[ray,redis]`` and Debian's ``redis-server`` (started here on a
free loopback port). Usage: ``python bench/scale.py [--calls N] [--concurrency N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from pipeline.cli.batch.input import Defaults, Item, parse_input
from pipeline.cli.batch.ray_engine import RayEngine, WorkerSpec
from pipeline.cli.batch.runner import Engine, call_one
from pipeline.context import Context
from pipeline.pipeline import Pipeline
from pipeline.policy import RetryPolicy
from pipeline.profiles import resolve
from pipeline.request import Request
from stages.gate import select_gate

MODEL = "openai/bench"


def items(n: int, base_url: str) -> list[Item]:
    data = "".join(f'{{"id": {i}, "prompt": "q{i}"}}\n' for i in range(n)).encode()
    return parse_input(data, Defaults(model=MODEL, api_base=base_url)).items


#: (wall seconds for the whole run, seconds the calls spent in the pipeline)
Timing = tuple[float, float]


async def local_run(todo: list[Item], concurrency: int) -> Timing:
    pipe = Pipeline.default()
    limit = asyncio.Semaphore(concurrency)
    inside = 0.0

    async def one(item: Item) -> None:
        nonlocal inside
        async with limit:
            out = await call_one(pipe, item)
            assert out.error is None, out.error
            inside += out.elapsed_s

    started = time.perf_counter()
    await asyncio.gather(*(one(it) for it in todo))
    return time.perf_counter() - started, inside


async def engine_run(engine: Engine, todo: list[Item]) -> Timing:
    started = time.perf_counter()
    n, inside = 0, 0.0
    async with engine.outcomes(todo, on_retry=lambda: None) as outcomes:
        async for out in outcomes:
            assert out.error is None, out.error
            n += 1
            inside += out.elapsed_s
    assert n == len(todo)
    return time.perf_counter() - started, inside


async def ray_run(engine: RayEngine, fake: Served, calls: int) -> Timing:
    await engine.start()
    try:
        await engine_run(engine, items(20, fake.base_url))  # warm
        return await engine_run(engine, items(calls, fake.base_url))
    finally:
        await engine.close()


SERVE = """
import sys
from pipeline.testing import FakeProvider, Reply
with FakeProvider(default=Reply.text("an answer")) as fake:
    print(fake.base_url, flush=True)
    sys.stdin.read()
"""


class Served:
    """The fake provider in a child process (the engines only need its URL)."""

    def __enter__(self) -> Served:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.base_url = self.proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


async def engines(calls: int, concurrency: int) -> None:
    from stages.dispatch.litellm import close_loop_clients, import_litellm

    with Served() as fake:
        await import_litellm()
        await local_run(items(20, fake.base_url), 4)  # warm
        seq_local = await local_run(items(calls, fake.base_url), 1)
        par_local = await local_run(items(calls, fake.base_url), concurrency)
        await close_loop_clients()

        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # 127.0.0.1 only
        import ray

        await asyncio.to_thread(ray.init, address="local", include_dashboard=False)
        try:  # one cluster, two pools (the engines join it, and leave it running)
            seq_ray = await ray_run(RayEngine(WorkerSpec(), workers=1, concurrency=1), fake, calls)
            par_ray = await ray_run(
                RayEngine(WorkerSpec(), workers=2, concurrency=concurrency), fake, calls
            )
        finally:
            ray.shutdown()

    ms = 1000 / calls
    print(f"engines: {calls} calls to the fake provider (instant answers)")
    for name, (wall, inside) in (("local", seq_local), ("ray", seq_ray)):
        print(
            f"  one at a time, {name:5}  {wall * ms:6.2f} ms/call, of which in the pipeline"
            f" {inside * ms:6.2f}: the engine adds {(wall - inside) * ms:5.2f} ms"
        )
    added = (seq_ray[0] - seq_ray[1]) - (seq_local[0] - seq_local[1])
    print(f"  Ray's cost per call over the local engine: {added * ms:5.2f} ms")
    print(
        f"  {concurrency} at once: local {calls / par_local[0]:4.0f} calls/s,"
        f" ray (2 workers) {calls / par_ray[0]:4.0f} calls/s"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def acquire_cost(pipe_policy: RetryPolicy, n: int) -> float:
    base = f"http://bench-{time.time_ns()}.test/v1"
    req = Request(model=MODEL, messages=[{"role": "user", "content": "hi"}], api_base=base)
    ctx = Context(request=req, profile=resolve(req.model, base), policy=pipe_policy)
    gate = select_gate(ctx, req)
    clock, sleep = time.monotonic, asyncio.sleep
    async with gate.slot(clock, sleep):  # connect first
        pass
    samples = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            async with gate.slot(clock, sleep):
                pass
        samples.append((time.perf_counter() - started) / n * 1e6)
    for close in ctx.shared.closables():
        await close()
    return statistics.median(samples)


async def gates(url: str, n: int) -> None:
    local = await acquire_cost(RetryPolicy(gate="local"), n * 20)
    bucket_local = await acquire_cost(RetryPolicy(gate="local", rate_per_s=1e9), n * 20)
    redis = await acquire_cost(RetryPolicy(gate=url), n)
    bucket = await acquire_cost(RetryPolicy(gate=url, rate_per_s=1e9, burst=10**9), n)
    print("gate: one acquire (enter and leave slot), median of 5 runs")
    print(f"  in-process              {local:8.2f} us")
    print(f"  in-process + bucket     {bucket_local:8.2f} us")
    print(f"  Redis (loopback)        {redis:8.2f} us   (one round trip, one Lua script)")
    print(f"  Redis + bucket          {bucket:8.2f} us")


def with_redis(n: int) -> None:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed (sh scripts/setup.sh installs it)"
    port = free_port()
    workdir = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        asyncio.run(gates(f"redis://127.0.0.1:{port}/0", n))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--acquires", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-real")
    with_redis(args.acquires)
    asyncio.run(engines(args.calls, args.concurrency))


if __name__ == "__main__":
    main()
