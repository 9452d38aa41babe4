"""Exit statuses of the ``llmpipe`` command, one per failure kind.

Kept apart from the command itself so the batch runner can label each
failed line with the same kinds (``failure_kind``) that the exit codes use.
"""

from __future__ import annotations

import asyncio

from pipeline import errors

__all__ = ["EXIT_CODES", "EXIT_HELP", "exit_code", "failure_kind"]

#: exit status per outcome (2 is also argparse's usage error)
EXIT_CODES: dict[str, int] = {
    "ok": 0,
    "batch_incomplete": 1,
    "bad_input": 2,
    "auth": 3,
    "rate_limited": 4,
    "provider": 5,
    "interrupted": 6,
    "cancelled": 130,
    "internal": 70,
    "terminated": 143,
}

EXIT_HELP = """exit codes:
  0    ok
  1    batch: finished, but some lines failed or were skipped as bad input
  2    bad input (a bad argument, prompt, request field or input line; nothing was sent)
  3    authentication failed (missing or wrong API key)
  4    rate limited, and the retries ran out
  5    other provider errors (5xx, timeouts, empty answers, content filter, ...)
  6    the stream broke after part of the answer was printed
  70   an unexpected internal error (a bug: please report it with the --debug output)
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM). A batch resumes when re-run.
"""


def failure_kind(exc: BaseException) -> str:
    """The ``EXIT_CODES`` key of the failure ``exc``."""
    if isinstance(exc, errors.InvalidRequest | errors.BadRequest):
        return "bad_input"
    if isinstance(exc, errors.AuthenticationFailed):
        return "auth"
    if isinstance(exc, errors.RateLimited) or (
        isinstance(exc, errors.RetriesExhausted) and isinstance(exc.__cause__, errors.RateLimited)
    ):
        return "rate_limited"
    if isinstance(exc, errors.StreamInterrupted):
        return "interrupted"
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, errors.PipelineError):
        return "provider"
    return "internal"


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception that ended a command."""
    return EXIT_CODES[failure_kind(exc)]
