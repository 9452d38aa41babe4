"""Every ```python block of README.md runs as written, against the fake provider.

The only change made to a block is the one the README announces: a line
``MODEL = ...`` or ``API_BASE = ...`` at the start of a line is pointed at
the loopback fake provider started here. The blocks run one after another
in one fresh interpreter (LiteLLM is imported once), each in a namespace
of its own, with its output captured; a block that raises fails its test.

The fake provider answers like a model with tools: a request offering
tools and ending with the user's turn gets a call to the first tool; a
request ending with tool results, or offering no tools, gets text.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.testing import FakeProvider, RecordedRequest, Reply

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
BLOCKS = FENCE.findall((ROOT / "README.md").read_text())
MODEL = "openai/readme-model"
FINAL = "It is clear in Paris, 21 °C."

RUNNER = """
import contextlib, io, json, sys, traceback

results = []
for source in json.load(open(sys.argv[1])):
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(source, "<README block>", "exec"), {"__name__": "__main__"})
        results.append({"ok": True, "out": out.getvalue()})
    except BaseException:
        results.append({"ok": False, "out": out.getvalue(), "error": traceback.format_exc()})
json.dump(results, open(sys.argv[2], "w"))
"""


def reply(req: RecordedRequest) -> Reply:
    body: dict[str, Any] = req.body
    last = body["messages"][-1]
    tools = body.get("tools") or []
    if tools and last["role"] == "user":
        function = tools[0]["function"]
        required = function["parameters"].get("required", [])
        return Reply.tool_calls(("call_1", function["name"], {name: "Paris" for name in required}))
    if last["role"] == "tool":
        return Reply.text("It is clear", " in Paris, 21 °C.")
    return Reply.text("Because of", " Rayleigh scattering.")


def aimed(block: str, base_url: str) -> str:
    block = re.sub(r"^MODEL = .*$", f"MODEL = {MODEL!r}", block, flags=re.MULTILINE)
    return re.sub(r"^API_BASE = .*$", f"API_BASE = {base_url!r}", block, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def ran(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[list[dict[str, Any]], FakeProvider]]:
    work = tmp_path_factory.mktemp("readme")
    with FakeProvider() as fake:
        fake.respond_with(reply)
        (work / "blocks.json").write_text(json.dumps([aimed(b, fake.base_url) for b in BLOCKS]))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "LLMPIPE_"))}
        env.update(OPENAI_API_KEY="sk-readme-not-a-real-key", PYTHONPATH=str(ROOT))
        done = subprocess.run(
            [sys.executable, "-c", RUNNER, "blocks.json", "results.json"],
            cwd=work,
            env=env,
            timeout=300,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        yield json.loads((work / "results.json").read_text()), fake


def test_the_readme_has_its_examples() -> None:
    assert len(BLOCKS) >= 6
    agent_loop = BLOCKS[0]
    assert "tool_result" in agent_loop and "to_message" in agent_loop
    assert len(agent_loop.splitlines()) < 40


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_the_block_runs_as_written(
    ran: tuple[list[dict[str, Any]], FakeProvider], index: int
) -> None:
    results, _ = ran
    result = results[index]
    assert result["ok"], f"README python block {index} failed:\n{BLOCKS[index]}\n{result['error']}"


def test_the_agent_loop_ran_the_tool_and_streamed_the_answer(
    ran: tuple[list[dict[str, Any]], FakeProvider],
) -> None:
    results, fake = ran
    assert results[0]["out"] == FINAL + "\n"
    first_loop = [r.body["messages"] for r in fake.requests[:2]]
    assert first_loop[1][-1] == {
        "role": "tool",
        "tool_call_id": "call_1",
        "content": '{"city":"Paris","sky":"clear","celsius":21}',
    }
    assert first_loop[1][1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert all(r.body["model"] == "readme-model" for r in fake.requests)
