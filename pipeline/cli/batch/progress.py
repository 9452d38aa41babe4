"""The progress display of ``llmpipe batch``.

On a terminal: one line, rewritten in place (``\\r``) at most ten times a
second: a bar, done / total, rate, time left, tokens, retries, errors.
Elsewhere (a log file, CI): a plain line every ``interval_s`` seconds and at
the end, so logs stay readable. Messages (a failed line) are printed above
the bar. The clock is injectable, so tests need no waiting.
"""

from __future__ import annotations

import shutil
import time
from collections import deque
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress"]

REDRAW_S = 0.1
#: the rate is measured over about this many recent seconds
RATE_WINDOW_S = 10.0
BAR_WIDTH = 30


class Progress:
    """Counts of a batch run, and their display on ``out``."""

    def __init__(
        self,
        total: int,
        out: TextIO,
        *,
        tty: bool | None = None,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        width: Callable[[], int] | None = None,
        enabled: bool = True,
    ) -> None:
        self.total = total
        self.out = out
        self.tty = _isatty(out) if tty is None else tty
        self.interval_s = interval_s
        self.clock = clock
        self.width = width or (lambda: shutil.get_terminal_size((100, 20)).columns)
        self.enabled = enabled
        self.started = clock()
        self.done = 0
        self.failed = 0
        self.retries = 0
        self.input_tokens = 0
        self.output_tokens = 0
        #: the cost of the answers whose model has a known price, and how many had one
        self.cost_usd = 0.0
        self.priced = 0
        self._samples: deque[tuple[float, int]] = deque([(self.started, 0)])
        self._last_draw: float | None = None
        self._shown = False  # a bar is on screen (tty)

    # -- counting -------------------------------------------------------------------

    def retried(self) -> None:
        self.retries += 1
        self.update()

    def finished(
        self,
        *,
        ok: bool,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float | None = None,
    ) -> None:
        self.done += 1
        self.failed += 0 if ok else 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if cost_usd is not None:
            self.cost_usd += cost_usd
            self.priced += 1
        self.update()

    # -- display --------------------------------------------------------------------

    def rate(self) -> float:
        """Requests finished per second, over the last ``RATE_WINDOW_S`` or so.

        A recent window, not the whole run: the start (importing litellm,
        the first round trip) and changes of pace would skew it for long.
        """
        since, done_then = self._samples[0]
        elapsed = self.clock() - since
        return (self.done - done_then) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The plain status line."""
        elapsed = self.clock() - self.started
        pct = f" ({100 * self.done // self.total}%)" if self.total else ""
        return (
            f"llmpipe batch: {self.done}/{self.total} done{pct}, {self.rate():.1f}/s,"
            f" tokens {self.input_tokens} in / {self.output_tokens} out,{self.cost()}"
            f" {self.retries} retries, {self.failed} errors, {_clock(elapsed)} elapsed"
        )

    def cost(self) -> str:
        """`` $0.0123,`` once an answer had a known price (else nothing)."""
        return f" ${self.cost_usd:.4f}," if self.priced else ""

    def bar(self) -> str:
        """The terminal status line, fitted to the terminal's width."""
        rate = self.rate()
        left = self.total - self.done
        eta = _clock(left / rate) if rate > 0 and left else "--:--"
        stats = (
            f" {self.done}/{self.total} {rate:.1f}/s eta {eta}"
            f"  tok {_short(self.input_tokens)} in/{_short(self.output_tokens)} out"
            + (f"  ${self.cost_usd:.2f}" if self.priced else "")
            + f"  retries {self.retries}  errors {self.failed}"
        )
        room = self.width() - 1 - len(stats) - 2
        if room < 10:
            return stats.strip()[: self.width() - 1]
        size = min(room, BAR_WIDTH)
        filled = size * self.done // self.total if self.total else size
        return "[" + "#" * filled + "-" * (size - filled) + "]" + stats

    def update(self, *, force: bool = False) -> None:
        """Redraw if it is time (a terminal: 10/s; otherwise: every ``interval_s``)."""
        now = self.clock()
        self._sample(now)
        if not self.enabled:
            return
        if self.tty:
            if force or self._last_draw is None or now - self._last_draw >= REDRAW_S:
                self._draw_bar(now)
        elif self._last_draw is None:
            self._last_draw = now  # the first plain line waits one interval
        elif force or now - self._last_draw >= self.interval_s:
            self.out.write(self.line() + "\n")
            self.out.flush()
            self._last_draw = now

    def note(self, message: str) -> None:
        """Print a message line (above the bar on a terminal)."""
        if self.tty and self._shown:
            self.out.write("\r\x1b[2K")
        self.out.write(message + "\n")
        self._shown = False
        if self.tty and self.enabled:
            self._draw_bar(self.clock())
        self.out.flush()

    def close(self) -> None:
        """The final state: the bar left on screen, or one last plain line."""
        if not self.enabled:
            return
        if self.tty:
            self._draw_bar(self.clock())
            self.out.write("\n")
            self._shown = False
        else:
            self.out.write(self.line() + "\n")
        self.out.flush()

    def _sample(self, now: float) -> None:
        last_time, last_done = self._samples[-1]
        if self.done != last_done or now - last_time >= 0.5:
            self._samples.append((now, self.done))
        # keep one sample at or before the window's start
        while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
            self._samples.popleft()

    def _draw_bar(self, now: float) -> None:
        self.out.write("\r\x1b[2K" + self.bar())
        self.out.flush()
        self._shown = True
        self._last_draw = now


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):
        return False


def _clock(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def _short(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)
