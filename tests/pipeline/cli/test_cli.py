"""The ``llmpipe`` command, run in-process against the fake provider."""

import re
import subprocess
import sys

import pytest

from pipeline import cli, errors
from pipeline.testing import (
    Drop,
    FakeProvider,
    FinishStep,
    Reasoning,
    Reply,
    Text,
    ToolDelta,
    UsageStep,
)
from tests.helpers import closed_port


@pytest.fixture
def fake() -> FakeProvider:  # type: ignore[misc]
    with FakeProvider() as server:
        yield server


@pytest.mark.e2e
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


@pytest.mark.e2e
def test_run_shows_the_cost_on_its_end_line_when_the_price_is_known(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-not-real")
    fake.script(Reply.text("Hi", usage=UsageStep(1200, 30, cached_tokens=1000)))
    args = ["run", "-m", "openai/gpt-4o-mini", "--api-base", fake.base_url, "hi"]
    assert cli.main(args) == 0
    # 200 input at $0.15 / M, 1000 cached at $0.075 / M, 30 output at $0.60 / M
    assert " · model gpt-4o-mini · $0.000123 · " in capsys.readouterr().err
    fake.script(Reply.text("Hi"))
    assert cli.main(["run", "-m", "openai/fake", "--api-base", fake.base_url, "hi"]) == 0
    assert "$" not in capsys.readouterr().err  # no known price: no cost shown


@pytest.mark.e2e
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


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (Reply.error(401, "bad key"), 3),
        (Reply.error(429, "slow down"), 4),
        (Reply.error(500, "boom"), 5),
        # sent, and the provider said no: not "bad input, nothing was sent" (2)
        (Reply.error(400, "nope"), 7),
        (Reply.error(404, "no such model"), 7),
        (Reply.error(422, "unprocessable"), 7),
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
    assert len(err.splitlines()) == 1


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("reply", "line"),
    [
        (Reply.error(500, "boom"), "ProviderUnavailable: boom"),
        (Reply.error(400, "nope"), "BadRequest: nope"),
        (Reply.error(404, "no such model"), "ModelNotFound: no such model"),
    ],
)
def test_an_error_line_says_the_providers_words_once(
    fake: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    line: str,
) -> None:
    # litellm: "litellm.InternalServerError: InternalServerError: OpenAIException - boom"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    fake.script(reply)
    cli.main(["run", "-m", "openai/fake", "--api-base", fake.base_url, "--retries", "0", "hi"])
    assert capsys.readouterr().err == f"llmpipe: error: {line}\n"


@pytest.mark.e2e
def test_a_connection_failure_names_host_and_port_and_exits_8(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = closed_port()
    base = f"http://127.0.0.1:{port}/v1"
    assert cli.main(["run", "-m", "any-model", "--api-base", base, "--retries", "0", "hi"]) == 8
    assert capsys.readouterr().err == (
        f"llmpipe: error: ProviderUnreachable: cannot connect to 127.0.0.1:{port}"
        " (connection refused)\n"
    )


def test_bad_input_exits_2_before_sending(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli.main(
            ["run", "-m", "openai/fake", "--api-base", fake.base_url, "--max-tokens", "0", "hi"]
        )
        == 2
    )
    assert "argument --max-tokens: must be at least 1, got 0" in capsys.readouterr().err
    assert fake.requests == []


def test_exit_codes_are_distinct() -> None:
    assert len(set(cli.EXIT_CODES.values())) == len(cli.EXIT_CODES)
    assert cli.exit_code(errors.StreamInterrupted("x", partial_text="", transient=True)) == 6
    exhausted = errors.RetriesExhausted("x", attempts=3, reason="rate_limited")
    exhausted.__cause__ = errors.RateLimited("429")
    assert cli.exit_code(exhausted) == 4
    assert cli.exit_code(errors.EmptyResponse("x")) == 5
    assert cli.exit_code(ZeroDivisionError()) == 70
    assert cli.exit_code(errors.InvalidRequest("model", "x")) == 2  # nothing was sent
    for rejected in (errors.BadRequest, errors.ModelNotFound, errors.ContextWindowExceeded):
        assert cli.exit_code(rejected("x", status_code=400)) == 7  # sent, and refused
    unreachable = errors.ProviderUnreachable("cannot connect", host="h", port=1)
    assert cli.exit_code(unreachable) == 8
    gave_up = errors.RetriesExhausted("x", attempts=4, reason="transient")
    gave_up.__cause__ = unreachable
    assert cli.exit_code(gave_up) == 8


@pytest.mark.e2e
def test_run_shows_reasoning_tool_calls_and_retries_apart_from_the_answer(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    fake.script(
        Reply.error(429, "slow down", headers={"retry-after-ms": "1"}),
        Reply(
            (
                Reasoning("Think first."),
                Text("Checking."),
                ToolDelta(index=0, id="c1", name="search", arguments='{"q": "sky"}'),
                FinishStep("tool_calls"),
                UsageStep(20, 9),
            )
        ),
    )
    assert cli.main(["run", "-m", "openai/fake", "--api-base", fake.base_url, "hi"]) == 0
    out, err = capsys.readouterr()
    assert out == "Checking.\n"  # only the answer: `> answer.txt` keeps just that
    assert err.splitlines() == [
        "[retrying] rate limited: attempt 1 failed; trying again in 0.0s",
        "[thinking] Think first.",
        '[tool call] search({"q": "sky"}) id=c1',
        err.splitlines()[-1],
    ]
    assert err.splitlines()[-1].startswith(
        "[tool_calls] 20 in / 9 out tokens (0 cached, usage provider) · 1 retry · model fake · "
    )


@pytest.mark.e2e
def test_a_stream_broken_after_text_exits_6_keeping_what_was_printed(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    fake.script(Reply((Text("Half an an"), Drop())))
    assert cli.main(["run", "-m", "openai/fake", "--api-base", fake.base_url, "hi"]) == 6
    out, err = capsys.readouterr()
    assert out == "Half an an\n"
    assert err.startswith("llmpipe: error: StreamInterrupted: ")
    assert len(err.splitlines()) == 1


@pytest.mark.e2e
def test_debug_adds_the_traceback(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    fake.script(Reply.error(401, "bad key"))
    args = ["run", "-m", "openai/fake", "--api-base", fake.base_url, "--debug", "hi"]
    assert cli.main(args) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1].startswith("llmpipe: error: AuthenticationFailed: ")


def test_an_empty_prompt_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["run", "-m", "openai/fake", "  "]) == 2
    assert (
        capsys.readouterr().err
        == "llmpipe: error: InvalidRequest: invalid request: prompt: is empty\n"
    )


@pytest.mark.parametrize("command", ["run", "batch", "replay", "demo"])
def test_every_command_has_help_with_an_example_and_the_exit_codes(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out or "examples:" in out
    assert f"llmpipe {command}" in out.split("example")[-1]
    assert "exit codes:" in out and "130  interrupted" in out
    assert "--trace {otlp,console}" in out and "--debug" in out


def test_help_shows_examples() -> None:
    # the real entry point: `python -m pipeline.cli`
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("run", "batch", "replay", "demo"):
        assert f"llmpipe {command} " in out
    assert "exit codes:" in out
    assert "llmpipe batch prompts.jsonl -o answers.jsonl" in out


STAGES = ("normalize", "cache_tag", "retry", "dispatch", "reassemble", "usage")


@pytest.mark.e2e
def test_demo_shows_streaming_a_tool_call_a_handled_429_a_retried_empty_answer_and_spans(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # one run (it really waits, about 1.5 s): the session, and its span trees
    assert cli.main(["demo", "--trace", "console"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "  retry> attempt 1: rate limited (HTTP 429); waiting 0.4s, then asking again" in lines
    assert "assistant> Let me check the weather for you. " in lines
    assert '  tool call> get_weather({"city": "Paris"}) [id call_weather_1]' in lines
    assert "  tool> get_weather returned: Paris: 18 °C, sunny, light wind" in lines
    assert "  retry> attempt 1: empty answer; waiting 0.3s, then asking again" in lines
    assert "  thinking> The tool says 18 °C and sunny. " in lines
    assert "assistant> It is 18 °C and sunny in Paris right now: a good day for a walk. " in lines
    assert "  finish> stop; tokens 87 in (52 cached) / 16 out, usage from provider" in lines
    assert "what happened (4 requests served by the fake provider):" in lines
    order = ["rate limited", "tool call>", "tool>", "empty answer", "thinking>", "finish> stop"]
    positions = [out.index(marker) for marker in order]
    assert positions == sorted(positions)

    roots = [line for line in lines if re.match(r"chat (openai/)?demo-model ", line)]
    assert len(roots) == 2  # one trace per call (a call's retries are inside it)
    for name in (*STAGES, "empty_check"):
        assert re.search(rf"^[ │├└─]+{name}  ", out, re.MULTILINE), name
    # each attempt a span under retry; a failed one says the cause and wait of what followed
    assert re.search(r"^   ├─ attempt 1  [\d.]+ ms  error  RateLimited$", out, re.MULTILINE)
    assert re.search(r"^   │  │  · retry: rate_limited, waiting 0.40 s$", out, re.MULTILINE)
    assert re.search(r"^   └─ attempt 2  [\d.]+ ms  ok$", out, re.MULTILINE)
    assert re.search(r"^   ├─ attempt 1  [\d.]+ ms  error  EmptyResponse$", out, re.MULTILINE)
    assert re.search(r"^   │  │  · retry: empty, waiting 0.30 s$", out, re.MULTILINE)
    assert not re.search(r"─ (fallback|tool_compat)  ", out)  # they stand aside here
    # each tree follows the conversation turn it belongs to
    assert out.index("finish> tool_calls") < out.index(roots[0]) < out.index("tool> get_weather")


@pytest.mark.e2e
def test_run_with_trace_console_puts_the_tree_on_stderr_after_the_answer(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    fake.script(Reply.text("The sky ", "is blue."))
    args = ["run", "-m", "openai/fake", "--api-base", fake.base_url, "--trace", "console", "Why?"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert out == "The sky is blue.\n"
    assert re.match(r"chat (openai/)?fake ", err)
    assert all(re.search(rf"[├└]─ {name}  ", err) for name in STAGES)
    assert err.splitlines()[-1].startswith("[stop] 10 in / 5 out tokens")


def test_an_unknown_trace_exporter_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--trace", "jaeger"]) == 2
    assert "invalid choice: 'jaeger'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "--trace", "console", "run", "-m", "x", "hi"],
        ["run", "-m", "x", "hi", "--debug", "--trace", "console"],
        ["--debug", "run", "-m", "x", "--trace", "console", "hi"],
    ],
)
def test_debug_and_trace_go_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.build_parser().parse_args(argv)
    assert (getattr(args, "debug", False), getattr(args, "trace", None)) == (True, "console")


@pytest.mark.e2e
def test_run_with_trace_otlp_exports_the_call_to_the_collector(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.telemetry.receivers import HttpReceiver

    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    fake.script(Reply.text("ok"))
    with HttpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        args = ["run", "-m", "openai/fake", "--api-base", fake.base_url, "--trace", "otlp", "hi"]
        assert cli.main(args) == 0  # and the handle was shut down: the spans are flushed
    names = sorted(s.name for s in rx.spans())
    assert [n for n in names if n.startswith("chat ")] == ["chat fake"]
    assert {"normalize", "retry", "dispatch", "empty_check"} <= set(names)
    assert capsys.readouterr().out == "ok\n"
