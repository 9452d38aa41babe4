"""``llmpipe batch --engine ray`` for real: a local Ray cluster, killed, resumed, traced.

200 ids against the fake provider, some slow, some failing once with a 503.
The first run (``--workers 2``) loses one of its Ray actors (SIGKILLed by the
test, as an out-of-memory killer would) and is then SIGKILLed itself, with
calls in flight. The same command runs again with ``--trace otlp``; after it
every id is in the output exactly once, with the right text, the second run
asked only for what the first had not written, and every call's span is a
child of that run's ``batch`` span, in one trace, though it ran in an actor.

Every actor's gate is the same Redis (``LLMPIPE_GATE_URL``). Each run starts
(and the second stops) its own local cluster on 127.0.0.1:
tens of seconds on 2 cores, so this is marked ``ray`` and ``slow``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from pipeline.testing import (
    FakeProvider,
    FinishStep,
    RecordedRequest,
    Reply,
    Stall,
    Text,
    UsageStep,
)
from tests.telemetry.receivers import HttpReceiver

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
N = 200


def prompt(req: RecordedRequest) -> str:
    content: str = req.body["messages"][-1]["content"]
    return content


class Script:
    """Every 10th id answers slowly; every 7th fails once (503, retry in 20 ms)."""

    def __init__(self) -> None:
        self.failed: set[str] = set()

    def __call__(self, req: RecordedRequest) -> Reply:
        p = prompt(req)
        i = int(p.split("-")[1])
        if i % 7 == 3 and p not in self.failed:
            self.failed.add(p)
            return Reply.error(503, "busy", headers={"retry-after-ms": "20"})
        steps: tuple[Any, ...] = (Text("answer to "), Text(p), FinishStep("stop"), UsageStep(7, 3))
        if i % 10 == 5:
            steps = (Text("answer to "), Stall(0.3), *steps[1:])
        return Reply(steps)


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        server.respond_with(Script())
        yield server


def results(out: Path) -> list[dict[str, Any]]:
    data = out.read_bytes() if out.exists() else b""
    assert data == b"" or data.endswith(b"\n"), "the output ends in a torn line"
    return [json.loads(line) for line in data.splitlines()]


def descendants(pid: int) -> list[int]:
    """Every live process under ``pid`` (what the batch started: Ray's processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def listening(pids: list[int]) -> set[str]:
    """The addresses (hex, as /proc/net/tcp* has them) these processes listen on."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in (Path("/proc") / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                found.add(fields[1].rsplit(":", 1)[0])
    return found


#: 127.0.0.1 in /proc/net/tcp, and as an IPv4-mapped IPv6 address in tcp6
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def ray_tmp() -> Iterator[str]:
    """Ray's session files, of this test only (in /tmp: its socket paths must be short)."""
    path = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def scripts_run(url: str) -> int:
    """How many Lua scripts the Redis server has run (every gate acquire is one)."""
    client = redis.Redis.from_url(url)
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in ("evalsha", "eval"))


def test_a_ray_batch_survives_a_dead_actor_and_a_killed_driver(
    fake: FakeProvider, tmp_path: Path, ray_tmp: str, redis_url: str
) -> None:
    ids = [f"r-{i}" for i in range(N)]
    inp, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("".join(json.dumps({"id": i, "prompt": i}) + "\n" for i in ids))
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-not-real",
        "PYTHONPATH": str(ROOT),
        "RAY_TMPDIR": ray_tmp,
        "LLMPIPE_GATE_URL": redis_url,  # every actor shares one gate
    }
    scripts_before = scripts_run(redis_url)
    command = [
        sys.executable, "-m", "pipeline.cli", "batch", str(inp), "-o", str(out),
        "--model", "openai/fake", "--api-base", fake.base_url,
        "--engine", "ray", "--workers", "2", "--concurrency", "8", "--progress-every", "1",
    ]  # fmt: skip

    first = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: Ray's processes too
    )  # fmt: skip
    try:
        wait_until(lambda: len(results(out)) >= 30, 240, "30 results")
        ray_processes = descendants(first.pid)
        workers = [p for p in ray_processes if "ray::Worker" in cmdline(p)]
        assert len(workers) == 2, [cmdline(p) for p in ray_processes]
        # the local cluster listens on loopback only
        addresses = listening([first.pid, *ray_processes])
        assert addresses and addresses <= LOOPBACK, addresses
        os.kill(workers[0], signal.SIGKILL)  # an actor dies with calls in flight
        wait_until(lambda: len(results(out)) >= 80, 240, "80 results")
        first.send_signal(signal.SIGKILL)
        _, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
        with contextlib.suppress(ProcessLookupError):  # Ray's agents outlive a killed driver
            os.killpg(first.pid, signal.SIGKILL)
    first_err = err.decode()
    assert "a Ray worker died" in first_err
    written = results(out)
    assert 80 <= len(written) < N, "the kill came too late to leave work undone"
    assert all(r["error"] is None and r["text"] == f"answer to {r['id']}" for r in written)
    assert len({r["id"] for r in written}) == len(written)  # whole lines, each id once
    done_before = {r["id"] for r in written}
    asked_before = len(fake.requests)

    with HttpReceiver() as rx:
        traced = {**env, "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        second = subprocess.run(
            [*command, "--trace", "otlp"], cwd=ROOT, env=traced, capture_output=True,
            timeout=300, start_new_session=True,
        )  # fmt: skip
        spans = rx.spans()
    second_err = second.stderr.decode()
    assert second.returncode == 0, second_err
    final = results(out)
    assert sorted(r["id"] for r in final) == sorted(ids)  # every id exactly once
    assert all(r["text"] == f"answer to {r['id']}" and r["error"] is None for r in final)
    assert f"{len(done_before)} already done" in second_err
    left = N - len(done_before)
    assert f"{left} of {left} run ({left} ok, 0 failed)" in second_err
    # the second run asked only for what was missing (a 503'd id twice)
    asked = {prompt(r) for r in fake.requests[asked_before:]}
    assert asked == set(ids) - done_before

    (batch,) = [s for s in spans if s.name == f"batch {inp}"]
    calls = [s for s in spans if s.name.startswith("chat ")]
    assert len(calls) == left
    assert {s.span.trace_id for s in calls} == {batch.span.trace_id}
    assert {s.parent_id for s in calls} == {batch.span_id}
    assert batch.parent_id == b""  # the run's trace root
    totals = {
        k: batch.attributes[f"llmpipe.batch.{k}"] for k in ("ids", "to_run", "done", "failed")
    }
    assert totals == {"ids": N, "to_run": left, "done": left, "failed": 0}
    # every call of every actor went through the gate in Redis, which was never missed
    assert scripts_run(redis_url) - scripts_before >= N
    assert "cannot be used" not in first_err + second_err
