"""How a call is retried, timed out and dumped: ``RetryPolicy`` and the delay rule.

Each cause has its own budget, so a run of 429s cannot eat the budget meant
for dropped connections, and the three together bound the worst case:

- rate limited (429): 10 retries; the server's ``retry-after-ms``, else
  ``retry-after`` (seconds or HTTP-date), else ``2 * 2**n`` with jitter;
- transient (connection errors, 5xx, timeouts, a stream dropped before
  content): 3 retries; the server's wait if it gave one, else ``2 * 2**n``
  with jitter;
- empty response: 3 retries, a fixed 1 s apart.

Every wait is capped at 120 s. No stream can hang a call for ever: by default
the first chunk must come within 300 s and each next one within 120 s.

``retry_delay`` is a pure function of the attempt number, the response
headers and the time now; jitter is applied separately (``jittered``) and
only to computed backoff, never to a wait the server asked for.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "FIRST_CHUNK_TIMEOUT_S",
    "IDLE_TIMEOUT_S",
    "RETRY_CAUSES",
    "RetryCause",
    "RetryPolicy",
    "jittered",
    "retry_delay",
    "server_delay",
]

#: default wait for the first chunk, in seconds (``RetryPolicy.first_chunk_timeout_s``)
FIRST_CHUNK_TIMEOUT_S = 300.0
#: default wait between two chunks, in seconds (``RetryPolicy.idle_timeout_s``)
IDLE_TIMEOUT_S = 120.0

#: why a failed call is tried again; each cause has a budget of its own
RetryCause = Literal["rate_limited", "transient", "empty"]
RETRY_CAUSES: tuple[RetryCause, ...] = ("rate_limited", "transient", "empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Retry budgets, delays, timeouts and failed-request dumps of one pipeline.

    Timeouts are in seconds; ``None`` means no limit.
    ``first_chunk_timeout_s``: from sending the request to the first chunk
    (default 300 s: a reasoning model may think for minutes before its first
    chunk, and a long prompt takes time to read).
    ``idle_timeout_s``: between two chunks (default 120 s: once a stream runs,
    providers send chunks or keep-alive pings every few seconds; two minutes of
    silence is a stall, such as a body whose framing broke mid-stream).
    Both measure the wait for bytes: time the event loop was blocked or starved
    is not counted (``pipeline.timeouts``), so a busy process does not trip them.
    ``deadline_s``: the whole call, every attempt and wait included.
    ``max_in_flight``: calls to one endpoint running at once (``None``: any).
    ``rate_per_s`` / ``burst``: a token bucket per endpoint: at most ``burst``
    calls at once, then ``rate_per_s`` a second (``None``: no bucket; ``burst``
    defaults to one second's worth).
    ``gate``: where the per-endpoint gates live: ``"local"`` (this process) or
    ``"redis://host:port/db"`` (shared by every process using that Redis,
    ``llmpipe[redis]``); ``None`` reads ``LLMPIPE_GATE_URL``, else local.
    ``dump_dir``: where failed requests are dumped (also ``LLMPIPE_DUMP_DIR``);
    ``None`` and no variable means no dumps.
    """

    rate_limit_retries: int = 10
    transient_retries: int = 3
    empty_retries: int = 3
    backoff_base_s: float = 2.0
    max_delay_s: float = 120.0
    empty_delay_s: float = 1.0
    jitter: bool = True
    first_chunk_timeout_s: float | None = FIRST_CHUNK_TIMEOUT_S
    idle_timeout_s: float | None = IDLE_TIMEOUT_S
    deadline_s: float | None = None
    max_in_flight: int | None = None
    rate_per_s: float | None = None
    burst: int | None = None
    gate: str | None = field(default=None, repr=False)  # a URL may hold a password
    dump_dir: str | Path | None = None
    max_dumps: int = 50

    def __post_init__(self) -> None:
        for name in ("rate_limit_retries", "transient_retries", "empty_retries", "max_dumps"):
            if getattr(self, name) < 0:
                raise ValueError(f"RetryPolicy.{name} must be >= 0")
        for name in ("first_chunk_timeout_s", "idle_timeout_s", "deadline_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"RetryPolicy.{name} must be > 0 or None")
        if self.max_in_flight is not None and self.max_in_flight < 1:
            raise ValueError("RetryPolicy.max_in_flight must be >= 1 or None")
        if self.rate_per_s is not None and not (0 < self.rate_per_s < math.inf):
            raise ValueError("RetryPolicy.rate_per_s must be > 0 or None")
        if self.burst is not None and self.burst < 1:
            raise ValueError("RetryPolicy.burst must be >= 1 or None")
        if self.gate is not None and not (
            self.gate == "local" or self.gate.startswith(("redis://", "rediss://", "unix://"))
        ):
            raise ValueError("RetryPolicy.gate must be 'local', a redis:// URL, or None")

    def budget(self, cause: RetryCause) -> int:
        """How many retries ``cause`` may use."""
        return {
            "rate_limited": self.rate_limit_retries,
            "transient": self.transient_retries,
            "empty": self.empty_retries,
        }[cause]


def retry_delay(
    attempt: int,
    headers: Mapping[str, str] | None = None,
    *,
    base: float = 2.0,
    max_delay: float = 120.0,
    now: Callable[[], float] = time.time,
) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    The server's word first: ``retry-after-ms``, then ``retry-after`` as
    seconds (fractions allowed) or as an HTTP-date; a value that does not
    parse falls through to the next rule, a negative one clamps to 0. Else
    exponential backoff, ``base * 2**attempt``. Everything caps at
    ``max_delay``.
    """
    given = server_delay(headers, now=now)
    if given is not None:
        return min(given, max_delay)
    return min(base * math.pow(2, attempt), max_delay)


def server_delay(
    headers: Mapping[str, str] | None, *, now: Callable[[], float] = time.time
) -> float | None:
    """The wait the server asked for in its headers, or ``None`` if it asked for none."""
    if not headers:
        return None
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    millis = _number(lower.get("retry-after-ms"))
    if millis is not None:
        return max(0.0, millis / 1000.0)
    raw = lower.get("retry-after")
    seconds = _number(raw)
    if seconds is not None:
        return max(0.0, seconds)
    if raw:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when.timestamp() - now())
    return None


def jittered(
    delay: float, *, rand: Callable[[], float] = random.random, cap: float = math.inf
) -> float:
    """``delay`` spread over [0.5, 1.5) times itself (capped), so clients that
    failed together do not all come back together."""
    return min(delay * (0.5 + rand()), cap)


def _number(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None
