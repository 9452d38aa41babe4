"""The ``llmpipe`` command, run in-process against the fake provider."""

import subprocess
import sys

import pytest

from pipeline import cli, errors
from pipeline.testing import FakeProvider, Reply


@pytest.fixture
def fake() -> FakeProvider:  # type: ignore[misc]
    with FakeProvider() as server:
        yield server


def test_run_streams_the_answer_to_stdout_and_usage_to_stderr(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-not-real")
    fake.script(Reply.text("The sky ", "is blue."))
    code = cli.main(
        [
            "run",
            "--model",
            "openai/fake",
            "--api-base",
            fake.base_url,
            "--system",
            "Be brief.",
            "Why?",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    assert out == "The sky is blue.\n"
    assert "10 in / 5 out tokens" in err
    body = fake.requests[0].body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?"},
    ]
    assert fake.requests[0].headers["authorization"] == "Bearer sk-from-env-not-real"


def test_run_reads_the_prompt_from_stdin(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin"))
    fake.script(Reply.text("ok"))
    assert cli.main(["run", "-m", "openai/fake", "--api-base", fake.base_url, "--json", "-"]) == 0
    body = fake.requests[0].body
    assert body["messages"][-1] == {"role": "user", "content": "from stdin"}
    assert body["messages"][0]["content"].endswith("Please respond with a valid JSON object.")


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply.error(401, "bad key"), 3),
        (Reply.error(429, "slow down"), 4),
        (Reply.error(500, "boom"), 5),
        (Reply.error(400, "nope"), 2),
    ],
)
def test_failures_exit_with_a_code_per_kind_and_one_clear_line(
    fake: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    code: int,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    fake.script(reply)
    assert (
        cli.main(["run", "-m", "openai/fake", "--api-base", fake.base_url, "--retries", "0", "hi"])
        == code
    )
    err = capsys.readouterr().err
    assert err.startswith("llmpipe: error: ")
    assert "Traceback" not in err


def test_bad_input_exits_2_before_sending(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(
            ["run", "-m", "openai/fake", "--api-base", fake.base_url, "--max-tokens", "0", "hi"]
        )
        == 2
    )
    assert "max_tokens" in capsys.readouterr().err
    assert fake.requests == []


def test_exit_codes_are_distinct() -> None:
    assert len(set(cli.EXIT_CODES.values())) == len(cli.EXIT_CODES)
    assert cli.exit_code(errors.StreamInterrupted("x", partial_text="", transient=True)) == 6


def test_demo_runs_a_tool_call_conversation_offline(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert 'tool call> get_weather({"city": "Paris"})' in out
    assert "It is 18 °C and sunny in Paris" in out
    assert "2 requests served by the fake provider." in out


def test_help_shows_examples() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "llmpipe run --model openai/gpt-4o-mini" in out
    assert "llmpipe demo" in out
    for sub in ("run", "demo"):
        sub_help = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", sub, "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "example:" in sub_help
