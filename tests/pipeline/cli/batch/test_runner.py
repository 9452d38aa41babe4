"""``llmpipe batch`` in-process: the runner over the default pipeline with a stand-in dispatch.

The dispatch answers "answer to <prompt>" and can be told to fail, hang or
send a signal for given prompts, so every rule of the batch (concurrency,
resume, --retry-failed, bad lines, auth stop, graceful signals) is checked
in milliseconds. The real thing (litellm, HTTP, a killed process) is in
``test_cli_batch_kill.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline import Pipeline
from pipeline.cli.batch.breaker import STOP_AFTER, Breaker
from pipeline.cli.batch.input import Defaults
from pipeline.cli.batch.runner import BatchConfig, run_batch
from pipeline.context import Context
from pipeline.errors import (
    AuthenticationFailed,
    ProviderUnavailable,
    ProviderUnreachable,
    RateLimited,
)
from pipeline.events import Chunk, Event, Request, ToolFragment
from pipeline.policy import RetryPolicy
from pipeline.runner import closing
from pipeline.testing import FakeClock, text_chunks
from pipeline.tokens import estimate_tokens

Action = Callable[[], Any]


class Echo:
    """A dispatch: "answer to <prompt>", or what ``actions[prompt]`` says."""

    name = "dispatch"

    def __init__(self, actions: dict[str, Action] | None = None) -> None:
        self.actions = actions or {}
        self.calls: list[str] = []
        self.active = 0
        self.max_active = 0
        self.closed_early: list[str] = []

    def __call__(self, upstream: AsyncIterator[Event], ctx: Context) -> AsyncIterator[Event]:
        return self._run(upstream)

    async def _run(self, upstream: AsyncIterator[Event]) -> AsyncIterator[Event]:
        async with closing(upstream) as events:
            async for ev in events:
                if not isinstance(ev, Request):
                    yield ev
                    continue
                prompt = ev.messages[-1]["content"]
                self.calls.append(prompt)
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                finished = False
                try:
                    for _ in range(50):  # let the other calls start
                        await asyncio.sleep(0)
                    action = self.actions.get(prompt)
                    result = action() if action else None
                    if asyncio.iscoroutine(result):
                        result = await result
                    chunks = (
                        result if isinstance(result, list) else text_chunks("answer to ", prompt)
                    )
                    for chunk in chunks:
                        if isinstance(chunk, Exception):
                            raise chunk
                        yield chunk
                    finished = True
                finally:
                    self.active -= 1
                    if not finished:
                        self.closed_early.append(prompt)


def write_input(path: Path, ids: list[str], *extra: bytes) -> Path:
    lines = [json.dumps({"id": i, "prompt": f"p-{i}"}).encode() for i in ids]
    path.write_bytes(b"\n".join([*lines, *extra]) + b"\n")
    return path


def read_output(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines()]


class Batch:
    """Run batches on one input and output file, with a fresh Echo each time."""

    def __init__(self, tmp_path: Path, ids: list[str], *extra: bytes) -> None:
        self.input = write_input(tmp_path / "in.jsonl", ids, *extra)
        self.output = tmp_path / "out.jsonl"
        self.clock = FakeClock()
        self.err = io.StringIO()

    async def run(self, echo: Echo, *, policy: RetryPolicy | None = None, **config: Any) -> int:
        self.err = io.StringIO()
        pipe = Pipeline.default(
            sleep=self.clock.sleep,
            clock=self.clock.time,
            policy=policy or RetryPolicy(rate_limit_retries=1, jitter=False),
        ).replace("dispatch", echo)
        cfg = BatchConfig(
            input=str(self.input),
            output=self.output,
            defaults=Defaults(model="openai/m"),
            **{"concurrency": 4, **config},
        )
        return await run_batch(cfg, pipe, err=self.err, tty=False, clock=self.clock.time)

    def records(self) -> dict[str, dict[str, Any]]:
        out = read_output(self.output)
        ids = [r["id"] for r in out]
        assert len(ids) == len(set(ids)), f"an id appears twice: {ids}"
        return {r["id"]: r for r in out}


IDS = [f"q{i}" for i in range(20)]


async def test_every_line_runs_n_at_a_time_and_becomes_one_result_line(tmp_path: Path) -> None:
    batch = Batch(tmp_path, IDS)
    echo = Echo()
    assert await batch.run(echo, concurrency=4) == 0
    assert echo.max_active == 4
    records = batch.records()
    assert set(records) == set(IDS)
    assert records["q7"] == {
        "id": "q7",
        "text": "answer to p-q7",
        "reasoning": "",
        "tool_calls": [],
        "stop_reason": "stop",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 5,
            "cached_tokens": 0,
            "source": "provider",
            "cost_usd": None,  # openai/m has no known price
        },
        "model": "openai/m",
        "attempts": 1,
        "error": None,
        "line": 8,
        "elapsed_s": 0.0,
    }
    assert "20 of 20 run (20 ok, 0 failed)" in batch.err.getvalue()
    assert "tokens 200 in / 100 out" in batch.err.getvalue()


async def test_concurrency_one_runs_one_at_a_time(tmp_path: Path) -> None:
    batch = Batch(tmp_path, IDS[:5])
    echo = Echo()
    assert await batch.run(echo, concurrency=1) == 0
    assert echo.max_active == 1
    assert echo.calls == [f"p-q{i}" for i in range(5)]


async def test_failures_are_recorded_and_retried_only_with_retry_failed(tmp_path: Path) -> None:
    batch = Batch(tmp_path, IDS[:6])
    always_429 = Echo({"p-q2": lambda: [RateLimited("slow down", status_code=429)]})
    assert await batch.run(always_429) == 1  # finished, but not every id succeeded
    failed = batch.records()["q2"]
    assert failed["error"] == {
        "kind": "rate_limited",
        "type": "RetriesExhausted",
        "message": failed["error"]["message"],
    }
    assert "slow down" in failed["error"]["message"]
    assert failed["attempts"] == 2
    assert "id 'q2' (line 3) failed after 2 attempt(s)" in batch.err.getvalue()

    again = Echo()
    assert await batch.run(again) == 1  # nothing to do: q2 stays failed
    assert again.calls == []
    assert "5 already done, 1 failed earlier (skipped; --retry-failed" in batch.err.getvalue()

    fixed = Echo()
    assert await batch.run(fixed, retry_failed=True) == 0
    assert fixed.calls == ["p-q2"]
    records = batch.records()  # and every id exactly once: the failure line is gone
    assert len(records) == 6
    assert records["q2"]["text"] == "answer to p-q2" and records["q2"]["error"] is None


async def test_a_stream_broken_after_content_records_the_partial_text(tmp_path: Path) -> None:
    batch = Batch(tmp_path, ["a"])
    broken = Echo({"p-a": lambda: [Chunk(text="half an "), ProviderUnavailable("reset")]})
    assert await batch.run(broken) == 1
    rec = batch.records()["a"]
    assert rec["text"] == "half an "
    assert rec["error"]["kind"] == "interrupted"
    assert rec["error"]["type"] == "StreamInterrupted"
    assert rec["stop_reason"] is None


async def test_tool_calls_and_reasoning_are_in_the_result(tmp_path: Path) -> None:
    batch = Batch(tmp_path, ["a"])
    call = Chunk(
        tool_fragments=(ToolFragment(index=0, id="c1", name="search", arguments='{"q": "x"}'),)
    )
    echo = Echo(
        {
            "p-a": lambda: [
                Chunk(reasoning="hmm"),
                call,
                Chunk(finish_reason="tool_calls"),
                Chunk(usage={"prompt_tokens": 3, "completion_tokens": 4}),
            ]
        }
    )
    assert await batch.run(echo) == 0
    rec = batch.records()["a"]
    assert rec["tool_calls"] == [{"id": "c1", "name": "search", "arguments": {"q": "x"}}]
    assert (rec["reasoning"], rec["stop_reason"]) == ("hmm", "tool_calls")


async def test_bad_lines_are_reported_with_line_numbers_and_skipped(tmp_path: Path) -> None:
    batch = Batch(tmp_path, ["a", "b"], b"{oops", b'{"id": "a", "prompt": "again"}')
    echo = Echo()
    assert await batch.run(echo) == 1
    err = batch.err.getvalue()
    assert "llmpipe: bad input: line 3: not JSON" in err
    assert "llmpipe: bad input: line 4: duplicate id 'a' (first on line 1)" in err
    assert set(batch.records()) == {"a", "b"}
    assert batch.records()["a"]["text"] == "answer to p-a"


async def test_strict_stops_before_sending_anything(tmp_path: Path) -> None:
    batch = Batch(tmp_path, ["a", "b"], b'{"id": "c"}')
    echo = Echo()
    assert await batch.run(echo, strict=True) == 2
    assert echo.calls == []
    assert not batch.output.exists()
    assert "line 3: id 'c': give either a prompt or messages" in batch.err.getvalue()
    assert "stopped: 1 bad input lines (--strict); nothing was sent" in batch.err.getvalue()


async def test_an_input_without_a_single_valid_line_is_bad_input(tmp_path: Path) -> None:
    batch = Batch(tmp_path, [], b"nope")
    assert await batch.run(Echo()) == 2
    assert "has no valid request lines" in batch.err.getvalue()


async def test_a_failed_authentication_stops_the_run_and_resumes_after_the_fix(
    tmp_path: Path,
) -> None:
    batch = Batch(tmp_path, IDS)
    denied = Echo({"p-q5": lambda: [AuthenticationFailed("invalid api key", status_code=401)]})
    assert await batch.run(denied, concurrency=2) == 3
    assert "id 'q5' (line 6): AuthenticationFailed: invalid api key" in batch.err.getvalue()
    written = batch.records()
    assert "q5" not in written  # not a result: the re-run tries it again
    assert len(denied.calls) < len(IDS)  # it stopped launching
    fixed = Echo()
    assert await batch.run(fixed) == 0
    assert "p-q5" in fixed.calls and not set(fixed.calls) & {f"p-{i}" for i in written}
    assert set(batch.records()) == set(IDS)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
async def test_a_signal_stops_cleanly_and_the_same_command_resumes(
    tmp_path: Path, signum: int, code: int
) -> None:
    batch = Batch(tmp_path, IDS)
    hang = asyncio.Event()

    async def signal_then_hang() -> None:
        os.kill(os.getpid(), signum)
        await hang.wait()  # never set: only the signal ends this call

    async def hang_forever() -> None:
        await hang.wait()

    echo = Echo({"p-q6": signal_then_hang, "p-q5": hang_forever})
    assert await batch.run(echo, concurrency=3) == code
    done = batch.records()
    assert "q5" not in done and "q6" not in done  # cancelled in flight: not results
    assert set(echo.closed_early) >= {"p-q5", "p-q6"}  # and their streams were closed
    assert all(r["error"] is None and r["text"] == f"answer to p-{i}" for i, r in done.items())
    assert "run the same command to resume" in batch.err.getvalue()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored

    rest = Echo()
    assert await batch.run(rest) == 0
    assert sorted(rest.calls) == sorted(f"p-{i}" for i in IDS if i not in done)
    records = batch.records()
    assert set(records) == set(IDS)
    assert all(r["text"] == f"answer to p-{i}" for i, r in records.items())


async def test_the_input_can_come_from_stdin(tmp_path: Path) -> None:
    data = b'{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": "y"}\n'
    pipe = Pipeline.default(count_tokens=estimate_tokens).replace("dispatch", Echo())
    cfg = BatchConfig(input="-", output=tmp_path / "o.jsonl", defaults=Defaults(model="openai/m"))
    code = await run_batch(cfg, pipe, err=io.StringIO(), stdin=io.BytesIO(data), tty=False)
    assert code == 0
    assert [r["text"] for r in read_output(tmp_path / "o.jsonl")] in (
        ["answer to x", "answer to y"],
        ["answer to y", "answer to x"],
    )


def refused() -> list[Any]:
    return [
        ProviderUnreachable(
            "cannot connect to 127.0.0.1:9 (connection refused)",
            host="127.0.0.1",
            port=9,
            reason="connection refused",
        )
    ]


MANY = [f"q{i}" for i in range(200)]


async def test_an_endpoint_that_refuses_every_connection_stops_the_batch(tmp_path: Path) -> None:
    batch = Batch(tmp_path, MANY)
    dead = Echo(dict.fromkeys((f"p-{i}" for i in MANY), refused))
    policy = RetryPolicy(jitter=False)  # the default budgets: 3 transient retries per id
    assert await batch.run(dead, policy=policy, concurrency=8) == 8
    # a few attempts across ids, not 200 ids x 4 attempts with backoff
    assert len(dead.calls) <= 8 + STOP_AFTER
    assert batch.records() == {}  # nothing written: every id runs again next time
    err = batch.err.getvalue().splitlines()
    assert [line for line in err if line.startswith("llmpipe: error")] == [
        "llmpipe: error: ProviderUnreachable: cannot connect to 127.0.0.1:9 (connection refused):"
        f" stopped after {STOP_AFTER} connection failures in a row; 200 ids not written. Fix the"
        " endpoint (--api-base, the host, the server) and run the same command to resume"
    ]
    fixed = Echo()
    assert await batch.run(fixed, policy=policy) == 0
    assert sorted(fixed.calls) == sorted(f"p-{i}" for i in MANY)
    assert set(batch.records()) == set(MANY)


async def test_answers_in_between_keep_the_batch_going_and_refused_ids_are_not_written(
    tmp_path: Path,
) -> None:
    # a per-line base that is down, between lines that work: never 5 in a row
    batch = Batch(tmp_path, IDS)
    down = {f"p-q{i}" for i in range(0, 20, 2)}
    half = Echo(dict.fromkeys(down, refused))
    no_retries = RetryPolicy(rate_limit_retries=0, transient_retries=0, empty_retries=0)
    assert await batch.run(half, policy=no_retries, concurrency=1) == 1
    written = batch.records()
    assert set(written) == {f"q{i}" for i in range(1, 20, 2)}  # the refused ones are not results
    assert all(r["error"] is None for r in written.values())
    assert "10 ids could not connect and were not written" in batch.err.getvalue()
    again = Echo()
    assert await batch.run(again, policy=no_retries) == 0  # the re-run does the rest
    assert sorted(again.calls) == sorted(down)


def test_the_breaker_counts_failures_in_a_row_and_trips_once() -> None:
    trips: list[ProviderUnreachable] = []
    breaker = Breaker(trips.append, limit=3)
    failure = refused()[0]
    for _ in range(2):
        breaker.failed(failure)
    breaker.answered()  # a chunk, or an HTTP error: the server is there
    for _ in range(2):
        breaker.failed(failure)
    assert trips == []
    breaker.failed(failure)
    breaker.failed(failure)
    assert trips == [failure] and breaker.tripped is failure
