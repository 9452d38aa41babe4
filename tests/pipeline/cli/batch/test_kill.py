"""``llmpipe batch`` for real: litellm over HTTP to the fake provider, killed and resumed.

Two batch processes start at once (each pays the litellm import, ~7 s, so
they share it): one gets SIGINT, the other SIGKILL, while calls are in
flight (the fake provider sends half an answer and then hangs). Then the
same command runs again, in-process, and every input id must appear in the
output exactly once, with the right text, and only the missing ids may be
asked for again.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.testing import FakeProvider as Fake
from pipeline.testing import FinishStep, RecordedRequest, Reply, Stall, Text, UsageStep

ROOT = Path(__file__).resolve().parents[2]
N = 12
FAST = 3  # per run, the first FAST prompts are answered; the others hang half-way


class Script:
    """Answers ``answer to <prompt>``; while ``hanging``, later prompts hang mid-answer."""

    def __init__(self) -> None:
        self.hanging = True
        self.failing: set[str] = set()

    def __call__(self, req: RecordedRequest) -> Reply:
        prompt = req.body["messages"][-1]["content"]
        if prompt in self.failing:
            self.failing.discard(prompt)
            return Reply.error(429, "slow down", headers={"retry-after-ms": "1"})
        if self.hanging and int(prompt.rsplit("-", 1)[1]) >= FAST:
            return Reply((Text("partial "), Stall(None)))
        return Reply((Text("answer to "), Text(prompt), FinishStep("stop"), UsageStep(7, 3)))


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[Fake, Script]]:
    script = Script()
    with Fake() as server:
        server.respond_with(script)
        yield server, script


def batch_args(run: Path, fake: Fake, *more: str) -> list[str]:
    return [
        "batch",
        str(run / "in.jsonl"),
        "-o",
        str(run / "out.jsonl"),
        "--model",
        "openai/fake",
        "--api-base",
        fake.base_url,
        "--concurrency",
        "2",
        *more,
    ]


def make_input(run: Path, kind: str) -> list[str]:
    run.mkdir()
    ids = [f"{kind}-{i}" for i in range(N)]
    (run / "in.jsonl").write_text("".join(json.dumps({"id": i, "prompt": i}) + "\n" for i in ids))
    return ids


def results(run: Path) -> list[dict[str, Any]]:
    data = (run / "out.jsonl").read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the output ends in a torn line"
    return [json.loads(line) for line in data.splitlines()]  # every line whole JSON


@dataclass
class Killed:
    run: Path
    ids: list[str]
    code: int
    stderr: str
    written: list[dict[str, Any]]


@pytest.fixture(scope="module")
def killed(
    fake: tuple[Fake, Script], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Killed]:
    """Both batch processes, started together, killed mid-run, and what they left."""
    server, _ = fake
    base = tmp_path_factory.mktemp("killed")
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-not-real", "PYTHONPATH": str(ROOT)}
    procs: dict[str, tuple[subprocess.Popen[bytes], Path, list[str]]] = {}
    for kind in ("sigint", "sigkill"):
        run = base / kind
        ids = make_input(run, kind)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *batch_args(run, server)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        procs[kind] = (proc, run, ids)
    try:
        # Each process: FAST answered, then 2 calls (its concurrency) hanging mid-answer.
        asyncio.run(server.wait_requests(2 * (FAST + 2), timeout=90))
        procs["sigint"][0].send_signal(signal.SIGINT)
        procs["sigkill"][0].send_signal(signal.SIGKILL)
        out = {}
        for kind, (proc, run, ids) in procs.items():
            _, err = proc.communicate(timeout=30)
            out[kind] = Killed(run, ids, proc.returncode, err.decode(), results(run))
        return out
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("kind", ["sigint", "sigkill"])
def test_a_killed_batch_leaves_whole_lines_and_the_same_command_resumes(
    kind: str,
    killed: dict[str, Killed],
    fake: tuple[Fake, Script],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    server, script = fake
    k = killed[kind]
    if kind == "sigint":
        assert k.code == 130, k.stderr
        assert "interrupted: stopping" in k.stderr
        assert "run the same command to resume" in k.stderr
    else:
        assert k.code == -signal.SIGKILL
    # whole lines only, each a finished answer: the half answers in flight were not written
    assert k.written, "the kill came before any result was written"
    assert all(r["error"] is None and r["text"] == f"answer to {r['id']}" for r in k.written)
    assert {r["id"] for r in k.written} <= {f"{kind}-{i}" for i in range(FAST)}

    script.hanging = False
    before = len(server.requests)
    assert cli.main(batch_args(k.run, server)) == 0
    asked = [
        r.body["messages"][-1]["content"]
        for r in server.requests[before:]
        if r.body["messages"][-1]["content"].startswith(kind)
    ]
    done_before = {r["id"] for r in k.written}
    assert sorted(asked) == sorted(set(k.ids) - done_before)  # only what was missing
    final = results(k.run)
    assert sorted(r["id"] for r in final) == sorted(k.ids)  # every id exactly once
    assert all(r["text"] == f"answer to {r['id']}" and r["error"] is None for r in final)
    assert f"{len(done_before)} already done" in capsys.readouterr().err


def test_a_batch_through_litellm_retries_a_429_and_reports_progress(
    fake: tuple[Fake, Script],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    server, script = fake
    script.hanging = False
    run = tmp_path / "run"
    ids = make_input(run, "plain")
    script.failing.add("plain-4")
    assert cli.main(batch_args(run, server, "--progress-every", "0.1")) == 0
    final = {r["id"]: r for r in results(run)}
    assert set(final) == set(ids)
    assert final["plain-4"]["attempts"] == 2
    assert final["plain-0"]["usage"] == {
        "input_tokens": 7,
        "output_tokens": 3,
        "cached_tokens": 0,
        "source": "provider",
        "cost_usd": None,  # the fake model has no known price
    }
    err = capsys.readouterr().err
    assert re.search(r"12 of 12 run \(12 ok, 0 failed\) in [\d.]+s", err)
    assert "tokens 84 in / 36 out; 1 retries" in err
    assert "\r" not in err  # not a terminal: plain lines only
