"""``llmpipe batch``: a JSONL file of requests through one pipeline, N at a time, losing nothing.

- Every input line is checked first; bad lines are reported with their line
  numbers and skipped (``strict``: nothing runs).
- The output file is a journal (``pipeline.cli.batch.input.Journal``): one whole
  line per finished request, written as soon as it finishes. Re-running the
  same command resumes: ids with a result are skipped, ids that failed are
  retried only with ``retry_failed`` (their new line supersedes the old, and
  the file is compacted to one line per id at the end of the run).
- Requests run ``concurrency`` at a time through one shared pipeline
  (``engine.LocalEngine``), so its retry policy and per-endpoint gate apply
  across the whole batch. Another ``Engine`` (``ray_engine``: a pool of Ray
  actors) may run the calls instead; this process still validates, resumes
  and writes every line.
- SIGINT / SIGTERM stop launching, cancel the calls in flight (they are not
  written, so the next run redoes them), flush, and exit 130 / 143. A second
  signal exits at once. SIGKILL is safe by construction: every line is whole.
- A failed authentication stops the run (every other line would fail the
  same way); that line is not written, so the re-run after the fix retries it.
- Usage limits (``BatchConfig.limits``: ``--max-cost``, ``--max-total-tokens``,
  ``--max-requests``) count this run and what the output file says earlier
  runs spent. Once one is reached no other id starts; the ids in flight
  finish, except that a request they still need (a retry, a fallback) is
  refused (``UsageLimitExceeded``, nothing sent) and such an id is not
  written. A re-run with a higher limit resumes with the ids not written.
- An endpoint that cannot be reached stops the run too, after
  ``batch_breaker.STOP_AFTER`` connection failures in a row across lines
  (``pipeline.cli.batch.breaker``); lines that could not connect are never
  written (nothing was sent), so the re-run does them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, TextIO

import msgspec

from pipeline.cli.batch.breaker import Breaker
from pipeline.cli.batch.engine import Engine, EngineError, LocalEngine, Outcome
from pipeline.cli.batch.input import Defaults, Item, parse_input
from pipeline.cli.batch.journal import Journal, JournalWriter, Loaded
from pipeline.cli.batch.progress import Progress
from pipeline.cli.batch.report import MAX_NOTES, finish, report_problems, report_resume, say
from pipeline.cli.exits import EXIT_CODES, failure_kind
from pipeline.errors import (
    AuthenticationFailed,
    ProviderUnreachable,
    StageNotFound,
    UsageLimitExceeded,
)
from pipeline.limits import UsageLimits, UsageMeter
from pipeline.pipeline import Pipeline

__all__ = ["BatchConfig", "plan", "run_batch"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchConfig:
    """What ``llmpipe batch`` was asked to do."""

    input: str  # a path, or "-" for stdin
    output: Path
    defaults: Defaults = field(default_factory=Defaults)
    concurrency: int = 8
    retry_failed: bool = False
    strict: bool = False
    progress: bool = True
    progress_interval_s: float = 5.0
    #: stop starting ids once one is reached (counting what earlier runs spent)
    limits: UsageLimits | None = None


def plan(items: list[Item], loaded: Loaded, *, retry_failed: bool) -> tuple[list[Item], int, int]:
    """``(to run, already done, failed earlier and skipped)``."""
    todo: list[Item] = []
    done = skipped_failed = 0
    for item in items:
        if item.key in loaded.ok:
            done += 1
        elif item.key in loaded.failed and not retry_failed:
            skipped_failed += 1
        else:
            todo.append(item)
    return todo, done, skipped_failed


async def run_batch(
    config: BatchConfig,
    pipe: Pipeline,
    *,
    err: TextIO,
    stdin: BinaryIO | None = None,
    clock: Callable[[], float] = time.monotonic,
    tty: bool | None = None,
    prepare: Callable[[], Awaitable[object]] | None = None,
    engine: Engine | None = None,
    summary: Callable[[dict[str, int]], None] | None = None,
) -> int:
    """Run a batch; the exit status (``pipeline.cli.exits.EXIT_CODES``).

    ``prepare`` runs once there is something to do, before the first call
    (the CLI imports litellm there, so the progress display starts with
    the calls, not seconds before them). ``engine`` runs the calls
    (default: here, ``concurrency`` at a time). ``summary`` is told the
    run's totals at its end (``ids``, ``to_run``, ``done``, ``failed``,
    ``skipped``, ``input_tokens``, ``output_tokens``): the CLI puts them on
    the batch's span.
    """
    try:
        data = _read_input(config.input, stdin)
    except OSError as exc:
        say(err, f"llmpipe: error: cannot read {config.input}: {exc.strerror or exc}")
        return EXIT_CODES["bad_input"]
    parsed = parse_input(data, config.defaults)
    report_problems(parsed.problems, err)
    if parsed.problems and config.strict:
        say(
            err,
            f"llmpipe: stopped: {len(parsed.problems)} bad input lines (--strict);"
            " nothing was sent",
        )
        return EXIT_CODES["bad_input"]
    if not parsed.items:
        say(err, f"llmpipe: error: {config.input} has no valid request lines")
        return EXIT_CODES["bad_input"]

    journal = Journal(config.output, clock=clock)
    try:
        journal.open()  # and lock: one batch per output file at a time
        loaded = journal.load()
    except OSError as exc:
        journal.close()
        say(err, f"llmpipe: error: cannot use {config.output}: {exc.strerror or exc}")
        return EXIT_CODES["bad_input"]
    try:
        todo, done_before, skipped_failed = plan(
            parsed.items, loaded, retry_failed=config.retry_failed
        )
        report_resume(config, loaded, done_before, skipped_failed, err)
        meter = None
        if config.limits is not None:
            if engine is not None:
                say(err, "llmpipe: error: usage limits need the local engine")
                return EXIT_CODES["bad_input"]
            meter = UsageMeter(config.limits, start=loaded.spent)
            pipe = pipe.with_options(limits=meter)
        if todo and (meter is None or meter.reached() is None):  # else: nothing starts
            n = len(todo)
            say(
                err,
                f"llmpipe: {n} request{'s' if n != 1 else ''} to run,"
                f" {config.concurrency} at a time"
                + (f" on {engine.describe()}" if engine is not None else ""),
            )
            if prepare is not None:
                await prepare()
        run = _Run(
            config, pipe, journal, todo, err=err, clock=clock, tty=tty, engine=engine, meter=meter
        )
        try:
            await run.execute()
        finally:
            await run.writer.drain()
            run.progress.close()
        retried = any(item.key in loaded.failed for item in todo)
        if loaded.superseded or loaded.unreadable or retried:
            # one line per id again (a retried id has its old failure line too)
            try:
                await asyncio.to_thread(journal.compact)
            except OSError as exc:  # the file is still right: the last line per id counts
                say(err, f"llmpipe: could not compact {config.output}: {exc}")
    finally:
        await asyncio.to_thread(journal.close)
    if summary is not None:
        summary(
            {
                "ids": len(parsed.items),
                "to_run": len(todo),
                "done": run.ok,
                "failed": run.failed,
                "skipped": done_before + skipped_failed,
                "input_tokens": run.progress.input_tokens,
                "output_tokens": run.progress.output_tokens,
            }
        )
    return finish(config, parsed, run, skipped_failed, err)


class _Run:
    """One run over the items left to do."""

    def __init__(
        self,
        config: BatchConfig,
        pipe: Pipeline,
        journal: Journal,
        todo: list[Item],
        *,
        err: TextIO,
        clock: Callable[[], float],
        tty: bool | None,
        engine: Engine | None = None,
        meter: UsageMeter | None = None,
    ) -> None:
        self.config = config
        self.meter = meter
        self.over_limit = 0  # ids refused a request by a usage limit, not written
        self.breaker = Breaker(self._on_unreachable)
        try:  # right after dispatch, inside retry: it sees every attempt
            self.pipe = pipe.insert_after("dispatch", self.breaker.stage())
        except StageNotFound:  # a pipeline without a dispatch stage (a test double)
            self.pipe = pipe
        self.engine: Engine = engine or LocalEngine(
            self.pipe,
            concurrency=config.concurrency,
            clock=clock,
            stop=None if meter is None else lambda: meter.reached() is not None,
        )
        self.todo = todo
        self.writer = JournalWriter(journal)
        self.clock = clock
        self.progress = Progress(
            len(todo),
            err,
            tty=tty,
            interval_s=config.progress_interval_s,
            clock=clock,
            enabled=config.progress,
        )
        self.signal: int | None = None
        self.consumer: asyncio.Task[None] | None = None
        self.auth_failure: Outcome | None = None
        self.unreachable = 0  # lines that could not connect, not written
        self.write_error: OSError | None = None
        self.engine_error: EngineError | None = None
        self.ok = 0
        self.failed = 0
        self.notes = 0

    async def execute(self) -> None:
        if not self.todo:
            return
        loop = asyncio.get_running_loop()
        consumer = self.consumer = asyncio.create_task(self._consume())
        ticker = asyncio.create_task(self._tick())
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig, consumer)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
                continue
            installed.append(sig)
        try:
            await consumer
        except asyncio.CancelledError:
            if self.signal is None and self.breaker.tripped is None:
                raise
        finally:
            for done in installed:
                loop.remove_signal_handler(done)
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    def _on_signal(self, signum: int, consumer: asyncio.Task[None]) -> None:
        if self.signal is not None:
            # Second signal: quit now. Every line written so far is whole.
            os._exit(128 + signum)
        self.signal = signum
        name = "interrupted" if signum == signal.SIGINT else "terminated"
        self.progress.note(
            f"llmpipe: {name}: stopping; the calls in flight are cancelled and will run"
            " again next time (signal again to quit at once)"
        )
        consumer.cancel()

    def _on_unreachable(self, exc: ProviderUnreachable) -> None:
        """The breaker tripped: stop as a signal does (the calls in flight are not
        written); ``batch_report.finish`` says why, once."""
        if self.consumer is not None:
            self.consumer.cancel()

    async def _tick(self) -> None:
        every = 0.5 if self.progress.tty else min(self.config.progress_interval_s, 1.0)
        while True:
            await asyncio.sleep(every)
            self.progress.update()

    async def _consume(self) -> None:
        try:
            await self._write_all()
        except EngineError as exc:  # what was written stays; the next run does the rest
            self.engine_error = exc

    async def _write_all(self) -> None:
        async with self.engine.outcomes(self.todo, on_retry=self.progress.retried) as finished:
            async for outcome in finished:
                if isinstance(outcome.error, AuthenticationFailed):
                    self.auth_failure = outcome
                    return
                if isinstance(outcome.error, UsageLimitExceeded):
                    self.over_limit += 1  # not written: the re-run with a higher limit does it
                    continue
                if outcome.error is not None and failure_kind(outcome.error) == "unreachable":
                    self._not_sent(outcome)  # nothing was sent: the re-run does it
                    continue
                try:
                    await self.writer.write(msgspec.json.encode(outcome.record()))
                except OSError as exc:
                    self.write_error = exc
                    return
                self._count(outcome)

    def _count(self, outcome: Outcome) -> None:
        f = outcome.finish
        ok = outcome.error is None
        self.ok += ok
        self.failed += not ok
        self.progress.finished(
            ok=ok,
            input_tokens=f.input_tokens if f else 0,
            output_tokens=f.output_tokens if f else 0,
            cost_usd=f.cost_usd if f else None,
        )
        if not ok:
            self.notes += 1
            if self.notes <= MAX_NOTES:
                item = outcome.item
                self.progress.note(
                    f"llmpipe: id {item.id!r} (line {item.line}) failed after"
                    f" {outcome.attempts} attempt(s): {type(outcome.error).__name__}:"
                    f" {outcome.error}"
                )
            elif self.notes == MAX_NOTES + 1:
                self.progress.note("llmpipe: more failures: see the error field in the output")

    def _not_sent(self, outcome: Outcome) -> None:
        self.unreachable += 1
        if self.unreachable == 1:
            item = outcome.item
            self.progress.note(
                f"llmpipe: id {item.id!r} (line {item.line}): {outcome.error}; not written,"
                " so the next run tries it again"
            )


def _read_input(source: str, stdin: BinaryIO | None) -> bytes:
    if source == "-":
        return (stdin or sys.stdin.buffer).read()
    return Path(source).read_bytes()
