"""Start-up of the real program (``.venv/bin/llmpipe`` in a process of its own, stderr on a
terminal): loading the provider library is announced, Ctrl-C during it exits at once, and
a call the direct backend sends never loads it at all.

These run in fresh processes because what they test happens once per process: the
first import of litellm (seconds).
"""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.testing import FakeProvider, Reply

LLMPIPE = Path(sys.executable).with_name("llmpipe")
NOTICE = "llmpipe: loading the provider library…".encode()


@pytest.fixture
def fake() -> Iterator[FakeProvider]:
    with FakeProvider(default=Reply.text("hello")) as server:
        yield server


class OnTerminal:
    """``llmpipe ARGS`` with stderr on a pseudo-terminal (read here) and stdout on a pipe."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        master, slave = pty.openpty()
        self.master = master
        self.seen = b""
        self.proc = subprocess.Popen(
            [str(LLMPIPE), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            env=env,
        )
        os.close(slave)

    def read_until(self, wanted: bytes, timeout_s: float) -> bool:
        """Read the terminal until ``wanted`` shows (True) or the program ends (False)."""
        deadline = time.monotonic() + timeout_s
        while wanted not in self.seen:
            ready, _, _ = select.select([self.master], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                return False
            try:
                data = os.read(self.master, 4096)
            except OSError:  # the program closed the terminal: it ended
                return False
            if not data:
                return False
            self.seen += data
        return True

    def finish(self, timeout_s: float) -> tuple[int, bytes]:
        out, _ = self.proc.communicate(timeout=timeout_s)
        self.read_until(b"\0never", 0.5)  # what is left on the terminal
        os.close(self.master)
        return self.proc.returncode, out


def environment(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    return {**env, **changes}


def test_loading_is_announced_on_a_terminal_and_a_llama_model_fetches_nothing(
    fake: FakeProvider,
) -> None:
    # A model named like Llama 3 once made litellm fetch a tokenizer from the Hugging Face
    # hub after the call (offline: ~25 s of retries). HF_ENDPOINT points such a fetch at
    # the fake provider, which records it.
    model = "meta-llama/Llama-3.1-8B-Instruct"
    run = OnTerminal(
        "run",
        "--api-base",
        fake.base_url,
        "-m",
        model,
        "--backend",
        "litellm",
        "hi",
        env=environment(HF_ENDPOINT=fake.root_url),
    )
    code, out = run.finish(timeout_s=120)
    assert (code, out) == (0, b"hello\n")
    assert NOTICE in run.seen  # litellm takes seconds to import: the terminal was told
    notice_end = run.seen.index(NOTICE) + len(NOTICE)
    assert run.seen[notice_end:].startswith(b"\r\x1b[2K")  # and the line erased after
    assert [(r.method, r.path) for r in fake.requests] == [("POST", "/v1/chat/completions")]
    assert fake.requests[0].body["model"] == model
    assert fake.requests[0].headers["authorization"] == "Bearer no-key"


def test_ctrl_c_while_loading_exits_at_once_with_130(tmp_path: Path) -> None:
    # A provider library whose import never finishes: the old code waited for the
    # import thread (here: for ever); now Ctrl-C ends the program whatever the import
    # is doing. The bound is only there so a regression fails instead of hanging.
    stuck = tmp_path / "litellm"
    stuck.mkdir()
    (stuck / "__init__.py").write_text("import threading\nthreading.Event().wait()\n")
    env = environment(PYTHONPATH=str(tmp_path))
    args = ("run", "--api-base", "http://127.0.0.1:9/v1", "-m", "m", "--backend", "litellm", "hi")
    run = OnTerminal(*args, env=env)
    assert run.read_until(NOTICE, timeout_s=60), run.seen  # loading, for a second already
    run.proc.send_signal(signal.SIGINT)
    code, _ = run.finish(timeout_s=30)
    assert code == 130
    assert b"llmpipe: interrupted" in run.seen and b"Traceback" not in run.seen


def test_a_call_to_an_openai_compatible_server_never_imports_litellm(
    fake: FakeProvider, tmp_path: Path
) -> None:
    """The default backend ("auto") sends straight to a server that speaks OpenAI
    chat-completions: with a litellm whose import never ends on the path, the answer
    still comes, and nothing announces loading anything."""
    stuck = tmp_path / "litellm"
    stuck.mkdir()
    (stuck / "__init__.py").write_text("import threading\nthreading.Event().wait()\n")
    env = environment(PYTHONPATH=str(tmp_path))
    run = OnTerminal("run", "--api-base", fake.base_url, "-m", "m", "hi", env=env)
    code, out = run.finish(timeout_s=30)
    assert (code, out) == (0, b"hello\n"), run.seen
    assert NOTICE not in run.seen
    assert len(fake.requests) == 1


WORKER = """
import asyncio, sys
from pipeline import Request
from pipeline.cli.batch.command import worker_spec
from pipeline.cli.parser import build_parser

async def main():
    from pipeline.cli.batch.ray_engine import Worker
    args = build_parser().parse_args(
        ["batch", "in.jsonl", "-o", "o.jsonl", "--engine", "ray", "--api-base", sys.argv[1], "-m", "m"]
    )
    worker = Worker(worker_spec(args))
    await worker.ready()
    req = Request(model="m", messages=[{"role": "user", "content": "hi"}], api_base=sys.argv[1])
    print((await worker.pipe.acomplete(req)).text, "litellm" in sys.modules)
    await worker.close()

asyncio.run(main())
"""


def test_a_ray_worker_for_an_openai_compatible_server_never_imports_litellm(
    fake: FakeProvider, tmp_path: Path
) -> None:
    """A ``batch --engine ray`` worker warms up without litellm when the batch's model
    takes the direct backend (a litellm whose import never ends is on the path)."""
    stuck = tmp_path / "litellm"
    stuck.mkdir()
    (stuck / "__init__.py").write_text("import threading\nthreading.Event().wait()\n")
    done = subprocess.run(
        [sys.executable, "-c", WORKER, fake.base_url],
        env=environment(PYTHONPATH=str(tmp_path)),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (done.returncode, done.stdout) == (0, b"hello False\n"), done.stderr
    assert len(fake.requests) == 1
