"""What ``llmpipe batch`` says on stderr: bad lines, resuming, and how a run ended.

The summary and the exit status of a run are decided together, here, so the
status always matches the last line printed.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, TextIO

from pipeline.cli.batch.input import Parsed, Problem
from pipeline.cli.batch.journal import Loaded
from pipeline.cli.exits import EXIT_CODES
from pipeline.limits import shown_limit

if TYPE_CHECKING:
    from pipeline.cli.batch.runner import BatchConfig, _Run

__all__ = ["MAX_NOTES", "finish", "report_problems", "report_resume", "say"]

#: at most this many bad lines and failures are printed one by one
MAX_NOTES = 20


def say(err: TextIO, message: str) -> None:
    err.write(message + "\n")
    err.flush()


def report_problems(problems: list[Problem], err: TextIO) -> None:
    for problem in problems[:MAX_NOTES]:
        say(err, f"llmpipe: bad input: {problem}")
    if len(problems) > MAX_NOTES:
        say(err, f"llmpipe: bad input: ... and {len(problems) - MAX_NOTES} more bad lines")


def report_resume(
    config: BatchConfig, loaded: Loaded, done: int, skipped_failed: int, err: TextIO
) -> None:
    if loaded.truncated:
        say(
            err,
            f"llmpipe: dropped a torn last line ({loaded.truncated} bytes) from {config.output}",
        )
    if loaded.unreadable:
        say(err, f"llmpipe: ignored {loaded.unreadable} unreadable lines in {config.output}")
    if done or skipped_failed:
        msg = f"llmpipe: resuming {config.output}: {done} already done"
        if skipped_failed:
            msg += f", {skipped_failed} failed earlier (skipped; --retry-failed tries them again)"
        elif config.retry_failed and loaded.failed:
            msg += ", retrying the ones that failed"
        say(err, msg)


def finish(
    config: BatchConfig,
    parsed: Parsed,
    run: _Run,
    skipped_failed: int,
    err: TextIO,
) -> int:
    elapsed = run.clock() - run.progress.started
    finished = run.ok + run.failed
    rate = finished / elapsed if elapsed > 0 else 0.0
    p = run.progress
    say(
        err,
        f"llmpipe: {finished} of {len(run.todo)} run ({run.ok} ok, {run.failed} failed)"
        f" in {elapsed:.1f}s ({rate:.1f}/s); tokens {p.input_tokens} in /"
        f" {p.output_tokens} out;{p.cost().rstrip(',')}{';' if p.priced else ''}"
        f" {p.retries} retries; results in {config.output}",
    )
    left = len(run.todo) - finished
    if run.signal is not None:
        say(err, f"llmpipe: stopped with {left} left to do; run the same command to resume")
        return EXIT_CODES["cancelled" if run.signal == signal.SIGINT else "terminated"]
    if run.breaker.tripped is not None:
        say(
            err,
            f"llmpipe: error: ProviderUnreachable: {run.breaker.tripped}: stopped after"
            f" {run.breaker.limit} connection failures in a row; {left} ids not written."
            " Fix the endpoint (--api-base, the host, the server) and run the same command"
            " to resume",
        )
        return EXIT_CODES["unreachable"]
    if run.auth_failure is not None:
        item, exc = run.auth_failure.item, run.auth_failure.error
        say(
            err,
            f"llmpipe: error: id {item.id!r} (line {item.line}): {type(exc).__name__}: {exc}",
        )
        say(err, "llmpipe: stopped: fix the credentials and run the same command to resume")
        return EXIT_CODES["auth"]
    if run.meter is not None and left and (run.over_limit or run.meter.reached()):
        return _over_limit(run, left, err)
    if run.write_error is not None:
        say(err, f"llmpipe: error: cannot write {config.output}: {run.write_error}")
        return EXIT_CODES["batch_incomplete"]
    if run.engine_error is not None:
        say(err, f"llmpipe: error: {run.engine_error}; run the same command to resume")
        return EXIT_CODES["batch_incomplete"]
    if run.unreachable:
        say(
            err,
            f"llmpipe: {run.unreachable} ids could not connect and were not written;"
            " run the same command to try them again",
        )
    failed_total = skipped_failed + run.failed
    if failed_total or parsed.problems or run.unreachable:
        say(
            err,
            f"llmpipe: incomplete: {failed_total} ids failed, {len(parsed.problems)} bad input"
            " lines skipped"
            + ("; --retry-failed tries the failed ones again" if failed_total else ""),
        )
        return EXIT_CODES["batch_incomplete"]
    return EXIT_CODES["ok"]


_FLAGS = {
    "cost_usd": "--max-cost",
    "total_tokens": "--max-total-tokens",
    "requests": "--max-requests",
}


def _over_limit(run: _Run, left: int, err: TextIO) -> int:
    assert run.meter is not None
    hit = run.meter.reached()
    totals = run.meter.totals
    if hit is None:  # refused, then under the limit again: cannot happen, said plainly
        what = "a usage limit"
    else:
        limit, used, maximum = hit
        shown = (
            f"${used:.4f} of ${maximum:.4f}" if limit == "cost_usd" else f"{used:g} of {maximum:g}"
        )
        what = f"the {shown_limit(limit)} limit ({_FLAGS.get(limit, limit)}: {shown})"
    say(
        err,
        f"llmpipe: stopped: {what} is reached, counting earlier runs on {run.config.output}"
        f" (${totals.cost_usd:.4f}, {totals.input_tokens + totals.output_tokens} tokens,"
        f" {totals.requests} requests in all); {left} ids not run or not finished, nothing"
        " partial written. Run again with a higher limit to resume",
    )
    return EXIT_CODES["limit"]
