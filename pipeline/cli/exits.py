"""Exit statuses of the ``llmpipe`` command, one per failure kind.

Kept apart from the command itself so the batch runner can label each
failed line with the same kinds (``failure_kind``) that the exit codes use.
"""

from __future__ import annotations

import asyncio

from pipeline import errors
from pipeline.cli.batch.breaker import STOP_AFTER

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
    "rejected": 7,
    "unreachable": 8,
    "limit": 9,
    "cancelled": 130,
    "internal": 70,
    "terminated": 143,
}

EXIT_HELP = f"""exit codes:
  0    ok
  1    batch: finished, but some lines failed or were skipped as bad input
  2    bad input (a bad argument, prompt, request field or input line; nothing was sent)
  3    authentication failed (missing or wrong API key)
  4    rate limited, and the retries ran out
  5    other provider errors (5xx, timeouts, empty answers, content filter, ...)
  6    the stream broke after part of the answer was printed
  7    the provider rejected the request (HTTP 400/404/422: a parameter, an unknown
       model, a prompt over the context window)
  8    cannot connect to the provider (refused, host not found; nothing was sent);
       batch: stopped after {STOP_AFTER} connection failures in a row
  9    a usage limit was reached (--max-cost, --max-total-tokens, --max-requests);
       batch: re-run with a higher limit to resume
  70   an unexpected internal error (a bug: please report it with the --debug output)
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM). A batch resumes when re-run.
"""


def failure_kind(exc: BaseException) -> str:
    """The ``EXIT_CODES`` key of the failure ``exc``.

    "bad_input" is a refusal before anything was sent (``InvalidRequest``);
    "rejected" is the provider's refusal of what was sent (``BadRequest``
    and its subclasses: HTTP 400, 404, 422).
    """
    if isinstance(exc, errors.InvalidRequest):
        return "bad_input"
    if isinstance(exc, errors.UsageLimitExceeded):
        return "limit"
    if isinstance(exc, errors.BadRequest):
        return "rejected"
    if isinstance(exc, errors.AuthenticationFailed):
        return "auth"
    if _is(exc, errors.RateLimited):
        return "rate_limited"
    if _is(exc, errors.ProviderUnreachable):
        return "unreachable"
    if isinstance(exc, errors.StreamInterrupted):
        return "interrupted"
    if isinstance(exc, KeyboardInterrupt | asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, errors.PipelineError):
        return "provider"
    return "internal"


def _is(exc: BaseException, kind: type[BaseException]) -> bool:
    """``exc`` is a ``kind``, or retries of a ``kind`` that ran out."""
    if isinstance(exc, kind):
        return True
    return isinstance(exc, errors.RetriesExhausted) and isinstance(exc.__cause__, kind)


def exit_code(exc: BaseException) -> int:
    """The exit status for an exception that ended a command."""
    return EXIT_CODES[failure_kind(exc)]
