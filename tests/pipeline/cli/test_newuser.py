"""The command line as a new user meets it: a local server, a key from a variable,
``--version``, and every out-of-range number refused before anything is sent."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

from pipeline import __version__, cli
from pipeline.testing import FakeProvider, Reply
from tests.helpers import closed_port


@pytest.fixture
def fake() -> FakeProvider:  # type: ignore[misc]
    with FakeProvider() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["auto", "litellm"])
def test_a_local_server_needs_no_key_and_no_prefix(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], backend: str
) -> None:
    fake.script(Reply.text("local ", "answer"))
    args = ["run", "--api-base", fake.base_url, "-m", "any-model", "--backend", backend, "hi"]
    assert cli.main(args) == 0
    out, err = capsys.readouterr()
    assert out == "local answer\n"
    assert "model any-model" in err
    sent = fake.requests[0]
    assert sent.body["model"] == "any-model"  # exactly what was typed
    if backend == "auto":  # direct HTTP: no key, no Authorization header at all
        assert "authorization" not in sent.headers
    else:  # the openai SDK under litellm sends a request only with some key
        assert sent.headers["authorization"] == "Bearer no-key"


@pytest.mark.e2e
def test_the_key_comes_from_the_variable_api_key_env_names(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", "sk-local-0123456789")
    fake.script(Reply.text("ok"))
    args = ["run", "--api-base", fake.base_url, "-m", "any-model", "--api-key-env", "MY_SERVER_KEY"]
    assert cli.main([*args, "hi"]) == 0
    assert fake.requests[0].headers["authorization"] == "Bearer sk-local-0123456789"
    assert "sk-local" not in capsys.readouterr().err


@pytest.mark.e2e
def test_batch_takes_api_key_env_too(
    fake: FakeProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_SERVER_KEY", "sk-batch-0123456789")
    fake.default = Reply.text("ok")
    prompts = tmp_path / "in.jsonl"
    prompts.write_text('{"id": 1, "prompt": "a"}\n{"id": 2, "prompt": "b"}\n')
    out = tmp_path / "out.jsonl"
    args = ["batch", str(prompts), "-o", str(out), "-m", "any-model", "--api-base", fake.base_url]
    assert cli.main([*args, "--api-key-env", "MY_SERVER_KEY", "-q"]) == 0
    assert {r.headers["authorization"] for r in fake.requests} == {"Bearer sk-batch-0123456789"}
    assert "sk-batch" not in out.read_text()
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "llmpipe: error: --api-key-env: the variable MY_SERVER_KEY is not set\n"),
        ("", "llmpipe: error: --api-key-env: the variable MY_SERVER_KEY is empty\n"),
        ("  ", "llmpipe: error: --api-key-env: the variable MY_SERVER_KEY is empty\n"),
    ],
)
def test_an_unset_or_empty_variable_is_refused_naming_it(
    fake: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str | None,
    message: str,
) -> None:
    if value is None:
        monkeypatch.delenv("MY_SERVER_KEY", raising=False)
    else:
        monkeypatch.setenv("MY_SERVER_KEY", value)
    args = ["run", "--api-base", fake.base_url, "-m", "m", "--api-key-env", "MY_SERVER_KEY", "hi"]
    assert cli.main(args) == 2
    assert capsys.readouterr().err == message
    assert fake.requests == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--api-key", "sk-typed-on-the-command-line-123"],
        ["--api-key=sk-typed-on-the-command-line-123"],
        ["--api-key-env", "sk-typed-on-the-command-line-123"],  # a key where a name goes
    ],
)
def test_a_key_on_the_command_line_is_refused_without_repeating_it(
    fake: FakeProvider, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    assert cli.main(["run", "--api-base", fake.base_url, "-m", "m", *argv, "hi"]) == 2
    err = capsys.readouterr().err
    assert "sk-typed" not in err
    assert "--api-key-env" in err
    assert fake.requests == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"llmpipe {__version__}\n"
    assert __version__ == importlib.metadata.version("llmpipe")  # one version, not two


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--retries", "-1"], "argument --retries: must be at least 0, got -1"),
        (["batch", "--retries", "-1"], "argument --retries: must be at least 0, got -1"),
        (["run", "--max-tokens", "0"], "argument --max-tokens: must be at least 1, got 0"),
        (["batch", "--max-tokens", "-5"], "argument --max-tokens: must be at least 1, got -5"),
        (["batch", "--concurrency", "0"], "argument -c/--concurrency: must be at least 1, got 0"),
        (["batch", "--progress-every", "-1"], "argument --progress-every: must be more than 0"),
        (["batch", "--progress-every", "0"], "argument --progress-every: must be more than 0"),
        (["batch", "--progress-every", "nan"], "argument --progress-every: must be more than 0"),
        (["run", "--retries", "two"], "argument --retries: not a whole number: 'two'"),
    ],
)
def test_out_of_range_numbers_are_refused_by_the_parser(
    fake: FakeProvider,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
    message: str,
) -> None:
    command, *option = argv
    where = (
        ["-m", "m", "hi"]
        if command == "run"
        else [str(tmp_path / "in.jsonl"), "-o", str(tmp_path / "out.jsonl"), "-m", "m"]
    )
    (tmp_path / "in.jsonl").write_text('{"id": 1, "prompt": "a"}\n')
    assert cli.main([command, "--api-base", fake.base_url, *option, *where]) == 2
    assert message in capsys.readouterr().err
    assert fake.requests == []
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.e2e
def test_a_batch_against_a_dead_port_stops_at_once_and_resumes(
    fake: FakeProvider, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # real litellm, real sockets, the default retry policy: 200 ids took over 6 minutes
    # (60 here, to keep the resume quick; the count does not change the stop)
    prompts = tmp_path / "in.jsonl"
    prompts.write_text("".join(f'{{"id": {i}, "prompt": "q{i}"}}\n' for i in range(60)))
    out = tmp_path / "out.jsonl"
    port = closed_port()
    args = ["batch", str(prompts), "-o", str(out), "-m", "any-model", "-q"]
    assert cli.main([*args, "--api-base", f"http://127.0.0.1:{port}/v1"]) == 8
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1
    assert errors[0].startswith(
        f"llmpipe: error: ProviderUnreachable: cannot connect to 127.0.0.1:{port}"
        " (connection refused): stopped after 5 connection failures in a row; 60 ids not written."
    )
    assert out.read_text() == ""  # nothing lost: no id has a failure recorded
    fake.default = Reply.text("ok")
    assert cli.main([*args, "--api-base", fake.base_url]) == 0
    assert len(out.read_text().splitlines()) == 60
