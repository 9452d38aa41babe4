"""``llmpipe replay``: a failed-request dump played back through the real pipeline."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import msgspec
import pytest

from pipeline import Pipeline, cli
from pipeline.cli.replay import replay
from pipeline.events import Chunk, Request, TextDelta, ToolFragment
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Reply, UsageStep, text_chunks, tool_chunks
from pipeline.tokens import estimate_tokens
from stages import dumps
from stages.dispatch.litellm import close_loop_clients
from stages.dispatch.replay import replay_dispatch
from stages.dumps import BadDump, DumpFile, decode_dump, encode_dump

REQUEST = Request(
    model="openai/prod-model",
    messages=[{"role": "user", "content": "What's the weather?"}],
    api_key="sk-secret-never-dumped",
)


def write_dump(path: Path, chunks: list[Chunk], kind: str = "empty") -> Path:
    dump = DumpFile.of(
        request=REQUEST,
        error_kind=kind,
        error="openai/prod-model returned no text and no tool call",
        attempt=1,
        tokens=(5, "estimate"),
        chunks=chunks,
    )
    path.write_bytes(encode_dump(dump))
    return path


def test_a_dump_decodes_to_the_request_and_chunks_it_recorded(tmp_path: Path) -> None:
    chunks = [*tool_chunks(("c1", "search", '{"q": 1}')), Chunk(text="hi", reasoning="r")]
    dump = decode_dump(write_dump(tmp_path / "d.json", chunks).read_bytes())
    assert dump.chunks == tuple(chunks)
    assert dump.request.messages == REQUEST.messages and dump.request.api_key is None
    assert (dump.error_kind, dump.attempt, dump.estimated_tokens) == ("empty", 1, 5)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"{nope", "not JSON"),
        (b"[]", "not a failed-request dump (not a JSON object)"),
        (b'{"format": "other/1"}', "not a failed-request dump (format 'other/1'"),
        (
            b'{"format": "llmpipe.failed-request/1", "request": {"model": ""}, "chunks": []}',
            "the recorded request or chunks do not decode",
        ),
        (
            b'{"format": "llmpipe.failed-request/1", "request": {"model": "m",'
            b' "messages": [{"role": "user", "content": "x"}]}, "chunks": {}}',
            "the recorded request or chunks do not decode: Expected `array`, got `object`"
            " - at `$.chunks`",
        ),
    ],
)
def test_a_file_that_is_not_a_dump_says_why(data: bytes, problem: str) -> None:
    with pytest.raises(BadDump, match="^" + re.escape(problem)):
        decode_dump(data)


async def test_the_replay_dispatch_plays_the_chunks_for_every_request() -> None:
    p = Pipeline.default(count_tokens=estimate_tokens).replace(
        "dispatch", replay_dispatch(text_chunks("Hel", "lo"))
    )
    for _ in range(2):
        async with p.stream(REQUEST) as events:
            texts = [ev.text async for ev in events if isinstance(ev, TextDelta)]
        assert texts == ["Hel", "lo"]


@pytest.mark.e2e
async def test_a_real_empty_answer_dump_replays_to_the_same_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(dumps.DUMP_DIR_ENV, raising=False)
    clock = FakeClock()
    prod = Pipeline.default(
        policy=RetryPolicy(empty_retries=1, dump_dir=tmp_path),
        sleep=clock.sleep,
        clock=clock.time,
        count_tokens=estimate_tokens,
    )
    async with FakeProvider() as fake:  # production: litellm over HTTP
        fake.script(Reply.empty(usage=UsageStep(9, 0)), Reply.text("ok"))
        req = msgspec.structs.replace(REQUEST, api_base=fake.base_url)
        try:
            assert (await prod.acomplete(req)).text == "ok"  # retried...
        finally:
            await close_loop_clients()
    (dump,) = tmp_path.glob("*.json")  # ...and dumped

    stdout = io.StringIO()
    args = argparse.Namespace(dump=str(dump), json=False, chunks=True, show_request=False)
    code = await replay(args, stdout)
    out = stdout.getvalue()
    assert code == 5  # what `llmpipe run` exits with for an empty answer
    assert f"replaying {dump}" in out
    assert "recorded: empty on attempt 1" in out
    assert "2 chunks recorded" in out
    assert '  chunk {"type":"chunk",' in out and '"finish_reason":"stop"' in out  # --chunks
    assert "the replay raised EmptyResponse: prod-model returned no text" in out
    assert "(reproduces the recorded failure: empty)" in out
    assert "sk-secret" not in dump.read_text() + out


def test_replay_prints_each_event_and_exits_0_when_the_chunks_make_an_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chunks = [
        Chunk(reasoning="thinking"),
        Chunk(text="Let me look."),
        Chunk(tool_fragments=(ToolFragment(index=0, id="c1", name="search", arguments='{"q":'),)),
        Chunk(tool_fragments=(ToolFragment(index=0, arguments=' "x"}'),)),
        Chunk(finish_reason="tool_calls"),
        Chunk(usage={"prompt_tokens": 12, "completion_tokens": 8}),
    ]
    dump = write_dump(tmp_path / "d.json", chunks)
    assert cli.main(["replay", str(dump)]) == 0
    out = capsys.readouterr().out
    events = out[out.index("events:\n") :].splitlines()[1:]
    assert events == [
        "  reasoning_delta 'thinking'",
        "  text_delta      'Let me look.'",
        "  text_end        12 chars: 'Let me look.'",
        '  tool_call       search({"q": "x"}) id=c1',
        "  finish          tool_calls; 12 in / 8 out tokens (0 cached, usage provider); model openai/prod-model",
        "the replay finished without an error (recorded: empty).",
    ]

    assert cli.main(["replay", "--json", str(dump)]) == 0
    out = capsys.readouterr().out
    lines = out[out.index("events:\n") :].splitlines()[1:-1]
    assert [json.loads(line)["type"] for line in lines] == [
        "reasoning_delta",
        "text_delta",
        "text_end",
        "tool_call",
        "finish",
    ]


def test_a_rate_limit_dump_has_nothing_to_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump = write_dump(tmp_path / "d.json", [], kind="rate_limited")
    assert cli.main(["replay", "--show-request", str(dump)]) == 4
    out = capsys.readouterr().out
    assert "nothing to replay: the failure came before the stream" in out
    assert '"model": "openai/prod-model"' in out and "api_key" in out and "sk-secret" not in out


def test_a_bad_dump_is_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert cli.main(["replay", str(bad)]) == 2
    assert cli.main(["replay", str(tmp_path / "missing.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("llmpipe: error: InvalidRequest: invalid request: DUMP.json:")
    assert "not a failed-request dump" in err[0]
    assert "No such file or directory" in err[1]
    assert len(err) == 2
