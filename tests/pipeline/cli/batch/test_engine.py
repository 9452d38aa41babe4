"""The batch runner's engine seam: another engine runs the calls, the runner still writes.

A stand-in engine (in this process, no Ray) runs each item through
``call_one`` with a scripted pipeline, the way the Ray workers do, and can be
told to lose some items, as an engine whose workers died would: the lines it
did deliver are written, the run says what was lost (exit 1), and the same
command with the default engine does exactly the rest.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from pipeline import Pipeline
from pipeline.cli.batch.engine import EngineError, Outcome, call_one
from pipeline.cli.batch.input import Defaults, Item
from pipeline.cli.batch.runner import BatchConfig, run_batch
from pipeline.errors import RateLimited
from pipeline.testing import FakeClock, scripted, text_chunks


class Elsewhere:
    """Runs items "remotely" (here, in order); loses the ids in ``lose``."""

    def __init__(self, pipe: Pipeline, lose: set[str]) -> None:
        self.pipe, self.lose = pipe, lose
        self.ran: list[str] = []

    def describe(self) -> str:
        return "somewhere else"

    @contextlib.asynccontextmanager
    async def outcomes(
        self, items: list[Item], *, on_retry: Callable[[], None]
    ) -> AsyncIterator[AsyncIterator[Outcome]]:
        yield self._run(items, on_retry)

    async def _run(self, items: list[Item], on_retry: Callable[[], None]) -> AsyncIterator[Outcome]:
        for item in items:
            if str(item.id) in self.lose:
                continue
            self.ran.append(str(item.id))
            yield await call_one(self.pipe, item, on_retry=on_retry)
        if self.lose:
            raise EngineError(f"{len(self.lose)} ids were not run: their workers died")


def config(tmp_path: Path) -> BatchConfig:
    return BatchConfig(
        input=str(tmp_path / "in.jsonl"),
        output=tmp_path / "out.jsonl",
        defaults=Defaults(model="openai/m"),
        progress=False,
    )


def lines(tmp_path: Path) -> dict[str, dict[str, object]]:
    return {
        str(r["id"]): r for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())
    }


async def test_what_an_engine_loses_is_not_written_and_the_next_run_does_it(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text(
        "".join(f'{{"id": "{i}", "prompt": "p{i}"}}\n' for i in range(5))
    )
    clock = FakeClock()
    limited = RateLimited("slow down", status_code=429, headers={"retry-after": "1"})
    scripts = [text_chunks("zero"), [limited], text_chunks("one"), text_chunks("three")]
    pipe = Pipeline.default(sleep=clock.sleep, clock=clock.time).replace(
        "dispatch", scripted(scripts)
    )
    engine = Elsewhere(pipe, lose={"2", "4"})
    err = io.StringIO()
    assert await run_batch(config(tmp_path), pipe, err=err, engine=engine) == 1
    said = err.getvalue()
    assert "5 requests to run, 8 at a time on somewhere else" in said
    assert "3 of 5 run (3 ok, 0 failed)" in said and "1 retries" in said
    assert "2 ids were not run: their workers died; run the same command to resume" in said
    got = lines(tmp_path)
    assert {k: v["text"] for k, v in got.items()} == {"0": "zero", "1": "one", "3": "three"}
    assert got["1"]["attempts"] == 2

    rest = Pipeline.default().replace(
        "dispatch", scripted([text_chunks("two"), text_chunks("four")])
    )
    err = io.StringIO()
    assert await run_batch(config(tmp_path), rest, err=err) == 0
    assert "3 already done" in err.getvalue()
    assert {k: v["text"] for k, v in lines(tmp_path).items()} == {
        "0": "zero",
        "1": "one",
        "2": "two",
        "3": "three",
        "4": "four",
    }
