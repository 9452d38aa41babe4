"""``llmpipe batch --max-cost / --max-total-tokens / --max-requests``, run in-process over
the fake provider: it stops starting ids at the limit, writes nothing partial, and a
re-run with a higher limit resumes, losing and duplicating nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline import cli
from pipeline.testing import FakeProvider, Reply, UsageStep

pytestmark = pytest.mark.e2e  # the command imports litellm

MODEL = "openai/gpt-4o-mini"  # $0.15 / M input, $0.60 / M output in litellm's table
#: each answer: 1000 in, 500 out tokens = $0.00045
COST = 1000 * 0.15e-6 + 500 * 0.6e-6
IDS = [f"q{i}" for i in range(12)]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeProvider]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-not-real")
    with FakeProvider() as server:
        server.respond_with(
            lambda r: Reply.text(
                "answer to ", r.body["messages"][-1]["content"], usage=UsageStep(1000, 500)
            )
        )
        yield server


def batch(fake: FakeProvider, tmp_path: Path, *flags: str) -> int:
    source = tmp_path / "in.jsonl"
    if not source.exists():
        source.write_text("".join(json.dumps({"id": i, "prompt": i}) + "\n" for i in IDS))
    args = ["batch", str(source), "-o", str(tmp_path / "out.jsonl"), "-m", MODEL]
    return cli.main([*args, "--api-base", fake.base_url, "-q", *flags])


def records(tmp_path: Path) -> list[dict[str, Any]]:
    data = (tmp_path / "out.jsonl").read_bytes()
    assert data == b"" or data.endswith(b"\n")  # whole lines only
    return [json.loads(line) for line in data.splitlines()]


def test_max_cost_stops_then_a_higher_limit_resumes_losing_and_duplicating_nothing(
    fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 5 answers cost $0.00225, the first total at or over $0.002
    assert batch(fake, tmp_path, "--max-cost", "0.002", "-c", "1") == 9
    first = records(tmp_path)
    assert len(first) == 5 == len(fake.requests)
    assert all(r["error"] is None and r["text"] == f"answer to {r['id']}" for r in first)
    assert first[0]["usage"]["cost_usd"] == pytest.approx(COST)
    err = capsys.readouterr().err
    assert "5 of 12 run (5 ok, 0 failed)" in err
    assert "$0.0022;" in err  # the summary's cost
    assert "stopped: the cost limit (--max-cost: $0.0022 of $0.0020) is reached" in err
    assert "7 ids not run or not finished" in err

    # the same limit again: the earlier run's spending counts, so nothing is sent
    assert batch(fake, tmp_path, "--max-cost", "0.002", "-c", "1") == 9
    assert len(fake.requests) == 5 and len(records(tmp_path)) == 5
    err = capsys.readouterr().err
    assert "requests to run" not in err and "7 ids not run" in err

    assert batch(fake, tmp_path, "--max-cost", "5", "-c", "4") == 0
    final = records(tmp_path)
    assert sorted(r["id"] for r in final) == sorted(IDS)  # each id exactly once
    assert len(fake.requests) == 12  # and each sent exactly once, over the three runs
    assert "resuming" in capsys.readouterr().err


def test_in_flight_ids_finish_and_only_ids_that_got_an_answer_are_written(
    fake: FakeProvider, tmp_path: Path
) -> None:
    # 3 in flight at once: the limit is reached while others are running; they finish
    assert batch(fake, tmp_path, "--max-total-tokens", "6k", "-c", "3") == 9
    written = records(tmp_path)
    assert 4 <= len(written) < len(IDS)  # 4 answers reach 6000 tokens; at most 2 more ran
    assert len(written) == len(fake.requests)  # every request sent was written, whole
    assert all(r["error"] is None for r in written)
    assert batch(fake, tmp_path, "--max-total-tokens", "2M", "-c", "3") == 0
    assert sorted(r["id"] for r in records(tmp_path)) == sorted(IDS)
    assert len(fake.requests) == len(IDS)


def test_max_requests_counts_retries_and_a_refused_retry_is_not_written(
    fake: FakeProvider, tmp_path: Path
) -> None:
    now = {"retry-after-ms": "0"}  # retry at once: no real wait
    fake.script(*[Reply.error(503, "overloaded", headers=now)] * 2)
    # q0: 503, 503 (two requests, the third refused: not written); nothing else starts
    assert batch(fake, tmp_path, "--max-requests", "2", "-c", "1") == 9
    assert records(tmp_path) == [] and len(fake.requests) == 2
    assert batch(fake, tmp_path, "--max-requests", "100", "-c", "1") == 0
    assert sorted(r["id"] for r in records(tmp_path)) == sorted(IDS)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-total-tokens", "2x"], "not a number"),
        (["--max-cost", "-1"], "must be $0 or more"),
        (["--max-requests", "1.5"], "whole number"),
    ],
)
def test_bad_limits_are_usage_errors_before_anything_is_sent(
    fake: FakeProvider,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    message: str,
) -> None:
    assert batch(fake, tmp_path, *flags) == 2
    assert message in capsys.readouterr().err
    assert fake.requests == []
