"""Rate limits and empty answers leave a dump behind, when dumps are on."""

import json
from pathlib import Path

import pytest

from pipeline import Pipeline
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Reply


@pytest.mark.parametrize("backend", ["litellm", "openai"])
async def test_rate_limit_and_empty_answers_are_dumped(
    fake: FakeProvider, clock: FakeClock, request_to, tmp_path: Path, backend: str
) -> None:
    fake.script(
        Reply.error(429, "slow down", headers={"retry-after": "1"}), Reply.empty(), Reply.text("ok")
    )
    p = Pipeline.default(
        sleep=clock.sleep,
        clock=clock.time,
        policy=RetryPolicy(dump_dir=tmp_path / "dumps"),
        backend=backend,
    )
    resp = await p.acomplete(request_to(system="be brief"))
    assert resp.text == "ok"
    files = sorted((tmp_path / "dumps").glob("*.json"))
    kinds = sorted(json.loads(f.read_text())["error_kind"] for f in files)
    assert kinds == ["empty", "rate_limited"]
    empty = next(json.loads(f.read_text()) for f in files if "empty" in f.name)
    assert empty["attempt"] == 2
    assert [c.get("finish_reason") for c in empty["chunks"] if c.get("finish_reason")] == ["stop"]
    assert empty["request"]["messages"][0] == {"role": "system", "content": "be brief"}
    assert empty["estimated_tokens"] > 0
    for f in files:
        assert "sk-test-key-not-real" not in f.read_text()


async def test_no_dump_dir_means_no_dumps(
    fake: FakeProvider, clock: FakeClock, request_to, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("LLMPIPE_DUMP_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    fake.script(Reply.empty(), Reply.text("ok"))
    p = Pipeline.default(sleep=clock.sleep, clock=clock.time)
    assert (await p.acomplete(request_to())).text == "ok"
    assert list(tmp_path.rglob("*.json")) == []
