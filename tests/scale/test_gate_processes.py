"""Four processes, one endpoint, one Redis: they back off together and keep to one rate.

This is real wall-clock coordination across processes, so it runs in real
time, kept short: 4 processes x 100 calls through real litellm to the fake
provider, a token bucket of 40 calls/s (burst 4) in Redis, and one 429 with
``Retry-After: 1.5`` in the middle. Asserted on the times the fake provider
received each request (one clock for all):

- once the process that got the 429 paused the endpoint (it says when, on
  the machine's monotonic clock, which the fake provider uses too), no
  process sends anything until the block ends, and each process's first
  request after it comes within a short tolerance of that same instant;
- in any one-second window at most rate + burst requests leave the gates
  (noted by a stage just before dispatch) and, give or take what a busy
  machine bunches on the way, reach the provider.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.testing import FakeProvider, RecordedRequest, Reply

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PROCESSES, CALLS, CONCURRENCY = 4, 100, 2
RATE, BURST = 40.0, 4
RETRY_AFTER = 1.5
LIMITED_AT = 120  # the index of the request that gets the 429
#: requests admitted just before the pause may still be on their way (2 busy cores)
IN_FLIGHT = 0.5
#: requests let through just before the pause reach the stage before dispatch within this
ADMITTED = 0.1
#: requests a busy machine may bunch on the way from the gate to the provider
TRANSIT = int(RATE * 0.1)
#: how late after the block's end each process may send its first request
RESUME_TOLERANCE = 0.5


def busiest(times: list[float]) -> int:
    """The most requests in any one-second window."""
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


def prompt(req: RecordedRequest) -> str:
    content: str = req.body["messages"][-1]["content"]
    return content


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    counted = itertools.count()

    def respond(req: RecordedRequest) -> Reply:
        if not prompt(req).startswith("warm") and next(counted) == LIMITED_AT:
            return Reply.error(429, "slow down", headers={"retry-after": str(RETRY_AFTER)})
        return Reply.text("answer to ", prompt(req))

    with FakeProvider() as server:
        server.respond_with(respond)
        yield server


def test_four_processes_pause_together_and_never_exceed_the_bucket(
    fake: FakeProvider, redis_url: str
) -> None:
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-test-not-real",
        "LLMPIPE_GATE_URL": redis_url,
        "PYTHONPATH": str(ROOT),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.scale.gate_worker",
                fake.base_url,
                f"p{k}",
                str(CALLS),
                str(CONCURRENCY),
                str(RATE),
                str(BURST),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(PROCESSES)
    ]
    try:
        for p in procs:  # each has imported litellm
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        reports = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            assert "cannot be used" not in err, err  # Redis answered every time: no fallback
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    for k, report in enumerate(reports):
        assert report["texts"] == [f"answer to p{k}-{i}" for i in range(CALLS)]
    requests = [r for r in fake.requests if not prompt(r).startswith("warm")]
    assert len(requests) == PROCESSES * CALLS + 1  # one retry: the 429's
    (paused,) = [t for report in reports for t in report["paused"]]  # one 429, one pause
    assert paused > requests[LIMITED_AT].received_at
    ends = paused + RETRY_AFTER
    sent = sorted(t for report in reports for _, t in report["sent"])
    assert len(sent) == len(requests)

    # No process let a request through the gate in the blocked window (those let
    # through just before the pause may reach the stage that notes it a little later) ...
    early = [round(t - paused, 3) for t in sent if paused < t < ends - 0.05]
    assert [t for t in early if t > ADMITTED] == [], early
    # ... so what the provider received in it had left before (the 2 cores are busy).
    late = [r for r in requests if paused + IN_FLIGHT < r.received_at < ends - 0.05]
    assert late == [], [(prompt(r), r.received_at - paused) for r in late]
    # Each process comes back at the block's end, not one Retry-After of its own later.
    for k, report in enumerate(reports):
        after = [t for _, t in report["sent"] if t >= ends - 0.05]
        assert after, f"process {k} sent nothing after the block"
        assert min(after) - ends < RESUME_TOLERANCE, (k, min(after) - ends)

    # The bucket: at most rate + burst requests in any one-second window as they left
    # the gates; at the provider too, give or take the requests that a busy machine
    # delays on their way (TRANSIT: 0.1 s worth). Four buckets of their own would let
    # through 4 x 40 a second.
    received = sorted(r.received_at for r in requests)
    assert busiest(sent) <= RATE + BURST
    assert busiest(received) <= RATE + BURST + TRANSIT
    # ... and it did hold them back: unthrottled, these calls take a fraction of this.
    assert sent[-1] - sent[0] >= (len(sent) - BURST) / RATE * 0.9 + RETRY_AFTER * 0.9
