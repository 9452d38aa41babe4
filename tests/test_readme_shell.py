"""Every ``llmpipe`` command in the README's shell blocks runs, against the fake provider.

The convention (README, "These examples are tested"): the fenced ``sh`` / ``shell`` /
``bash`` blocks are read in order, as a shell session; ``export`` lines set the
environment of the commands after them. In a block whose first line starts with
``# live:`` (it reaches a real provider), each command that takes a model gets
``--model`` replaced by ``MODEL`` and ``--api-base`` pointed at the fake provider;
nothing else is changed, anywhere. What a shell would have given the commands, the
test gives: the files they name (``prompts.jsonl``, the dump under ``~/.llmpipe``, in
a scratch directory that is also ``$HOME``), stdin text (the left side of a pipe is
not run), and a dummy key in a variable named by ``--api-key-env``.

Not run, on purpose: programs other than llmpipe (``docker``: the test checks that
is all it skips), and the set-up and test commands at the top (``scripts/setup.sh``
would rebuild this virtualenv, ``scripts/test.sh`` would run this test again).

Commands run in-process through ``pipeline.cli.main`` (litellm is imported once, not
once per command), each in README order.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pipeline import Pipeline, Request, cli
from pipeline.policy import RetryPolicy
from pipeline.testing import FakeClock, FakeProvider, Reply
from stages.dispatch.litellm import close_loop_clients

README = Path(__file__).resolve().parent.parent / "README.md"
MODEL = "readme-model"
DUMMY_KEY = "sk-readme-dummy-key"
STDIN = "diff --git a/x b/x\n+a line from stdin\n"
EXEMPT = ("scripts/setup.sh", "scripts/test.sh")

_FENCE = re.compile(r"^( *)```(sh|shell|bash)[ \t]*\n(.*?)^\1```", re.MULTILINE | re.DOTALL)


@dataclass
class Command:
    argv: list[str]
    live: bool
    env: dict[str, str] = field(default_factory=dict)  # exports and VAR=value prefixes
    piped: bool = False
    text: str = ""

    def __str__(self) -> str:
        return self.text


def commands(readme: str) -> tuple[list[Command], set[str]]:
    """The llmpipe commands of the README's shell blocks, and the programs skipped."""
    found: list[Command] = []
    skipped: set[str] = set()
    exported: dict[str, str] = {}
    for match in _FENCE.finditer(readme):
        indent, body = match[1], match[3]
        lines = [line.removeprefix(indent) for line in body.splitlines()]
        if any(exempt in line for line in lines for exempt in EXEMPT):
            continue
        live = next((line for line in lines if line.strip()), "").startswith("# live:")
        for line in _joined(lines):
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "export":
                exported.update(w.split("=", 1) for w in words[1:])  # type: ignore[arg-type]
                continue
            piped = "|" in words
            if piped:
                words = words[words.index("|") + 1 :]
            env = dict(exported)
            while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            program = Path(words[0]).name
            if program != "llmpipe":
                skipped.add(program)
                continue
            found.append(Command(words[1:], live, env, piped, shlex.join(words)))
    return found, skipped


def _joined(lines: list[str]) -> Iterator[str]:
    """Lines with backslash continuations joined, as the shell reads them."""
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def substituted(command: Command, home: Path, base: str) -> list[str]:
    """The arguments as the shell would pass them (``~`` expanded), and for a ``live``
    block, the model and base replaced."""
    argv = [str(home / a[2:]) if a.startswith("~/") else a for a in command.argv]
    subcommand = subcommand_of(argv)
    if not command.live or subcommand not in ("run", "batch"):
        return argv
    out: list[str] = []
    words = iter(argv)
    for word in words:
        if word in ("--model", "-m", "--api-base"):
            next(words)  # the value goes; ours comes below
            continue
        out.append(word)
    at = out.index(subcommand) + 1
    return [*out[:at], "--model", MODEL, "--api-base", base, *out[at:]]


def subcommand_of(argv: list[str]) -> str:
    return next((a for a in argv if a in ("run", "batch", "replay", "demo")), "")


COMMANDS, SKIPPED_PROGRAMS = commands(README.read_text(encoding="utf-8"))


def test_the_readme_has_shell_examples_and_skips_only_docker() -> None:
    assert len(COMMANDS) >= 12
    assert {"docker"} == SKIPPED_PROGRAMS
    assert {subcommand_of(c.argv) for c in COMMANDS} == {"run", "batch", "replay", "demo", ""}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(default=Reply.text("An ", "answer.")) as server:
        yield server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, fake: FakeProvider) -> Path:
    """The scratch directory (cwd and $HOME) with the files the examples name."""
    home = tmp_path_factory.mktemp("readme")
    (home / "prompts.jsonl").write_text(
        '{"id": "q1", "prompt": "Why is the sky blue?"}\n'
        '{"id": "q2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 200}\n'
    )
    _make_dump(home / ".llmpipe" / "failed" / "20250101T120000_empty_1a2b3c4d.json", fake)
    return home


def _make_dump(path: Path, fake: FakeProvider) -> None:
    """A real dump of an empty answer (written by the retry stage), under the README's name."""
    import asyncio

    async def record() -> None:
        clock = FakeClock()
        policy = RetryPolicy(empty_retries=1, dump_dir=str(path.parent))
        pipe = Pipeline.default(policy=policy, sleep=clock.sleep, clock=clock.time)
        fake.script(Reply.empty(), Reply.text("ok"))
        req = Request(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            api_base=fake.base_url,
            api_key="sk-dump",
        )
        await pipe.acomplete(req)
        await close_loop_clients()

    asyncio.run(record())
    (written,) = path.parent.glob("*empty*.json")
    written.rename(path)
    fake.reset()


@pytest.mark.parametrize("command", COMMANDS, ids=[c.text for c in COMMANDS])
def test_a_readme_command_runs_as_written(
    command: Command,
    fake: FakeProvider,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(home)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # the fake needs none: so must the examples
    for name, value in command.env.items():
        monkeypatch.setenv(name, str(Path(home, value[2:])) if value.startswith("~/") else value)
    if "--api-key-env" in command.argv:
        monkeypatch.setenv(command.argv[command.argv.index("--api-key-env") + 1], DUMMY_KEY)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(STDIN.encode())))
    fake.reset()
    fake.default = Reply.text("An ", "answer.")

    argv = substituted(command, home, fake.base_url)
    if "--engine" in argv and argv[argv.index("--engine") + 1] == "ray":
        # Ray starts a cluster of its own processes: run the command as a program, as a
        # user would, rather than make this test process a Ray driver.
        done = subprocess.run(
            [str(Path(sys.executable).with_name("llmpipe")), *argv],
            cwd=home,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=600,
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        code = cli.main(argv)
        out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    subcommand = subcommand_of(argv)
    if subcommand == "replay":  # the README's dump is an empty answer: replay reproduces it
        assert "reproduces the recorded failure: empty" in out
        assert code == 5, err
        return
    assert code == 0, err
    if argv == ["--version"]:
        assert out.startswith("llmpipe ")
    if subcommand == "run":
        assert out == "An answer.\n"
        assert [r.body["model"] for r in fake.requests] == [MODEL]
        if command.piped:
            assert fake.requests[0].body["messages"][-1]["content"] == STDIN
        if "--api-key-env" in command.argv:
            assert fake.requests[0].headers["authorization"] == f"Bearer {DUMMY_KEY}"
    if subcommand == "batch":
        assert "results in answers.jsonl" in err
        assert (home / "answers.jsonl").read_text().count("\n") == 2
