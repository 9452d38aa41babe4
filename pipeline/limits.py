"""Budgets: ``UsageLimits``, and the ``UsageMeter`` that counts against them.

A pipeline given ``limits=UsageLimits(...)`` counts every request it sends
and every answer's usage (tokens and cost) in one meter, shared by every call
of that pipeline (and the pipelines derived from it), from any thread or
event loop. Before each request is sent, dispatch asks the meter
(``admit``): once a limit is reached it raises ``UsageLimitExceeded``, and
nothing is sent. A stream already running is never cut short, so the totals
may end above a limit by what the requests in flight used.

``requests`` counts requests sent to providers: a retry and a fallback are
requests too. Cost counts only answers whose model has a known price
(``pipeline.cost``); answers of unpriced models are counted in
``unpriced`` (a cost limit cannot see them, and says so once in the log).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

from pipeline.errors import UsageLimitExceeded
from pipeline.secrets import guard_logger

__all__ = ["UsageLimits", "UsageMeter", "UsageTotals", "shown_limit"]

log = guard_logger("llmpipe.limits")


@dataclass(frozen=True, slots=True, kw_only=True)
class UsageLimits:
    """The most a pipeline (or a batch) may use; ``None``: no limit on that."""

    max_requests: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_total_tokens: int | None = None
    max_cost_usd: float | None = None

    def __post_init__(self) -> None:
        for name in (
            "max_requests",
            "max_input_tokens",
            "max_output_tokens",
            "max_total_tokens",
            "max_cost_usd",
        ):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"UsageLimits.{name} must be a number >= 0 or None")
            if name != "max_cost_usd" and not isinstance(value, int):
                raise ValueError(f"UsageLimits.{name} must be a whole number or None")

    def reached(self, used: UsageTotals) -> tuple[str, float, float] | None:
        """``(limit, used, maximum)`` of the first limit ``used`` has reached, or ``None``."""
        for limit, value, maximum in (
            ("requests", used.requests, self.max_requests),
            ("input_tokens", used.input_tokens, self.max_input_tokens),
            ("output_tokens", used.output_tokens, self.max_output_tokens),
            ("total_tokens", used.input_tokens + used.output_tokens, self.max_total_tokens),
            ("cost_usd", used.cost_usd, self.max_cost_usd),
        ):
            if maximum is not None and value >= maximum:
                return limit, value, maximum
        return None


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """What was used so far."""

    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    #: answers counted without a cost (their model has no known price)
    unpriced: int = 0

    def __add__(self, other: UsageTotals) -> UsageTotals:
        return UsageTotals(
            self.requests + other.requests,
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
            self.unpriced + other.unpriced,
        )


def shown_limit(limit: str) -> str:
    """A limit's name in a message: ``cost``, ``total tokens``, ``requests``."""
    return "cost" if limit == "cost_usd" else limit.replace("_", " ")


class UsageMeter:
    """Counts requests and usage against ``limits``; safe from any thread or event loop.

    ``start`` is what was used before (a resumed batch counts what its
    earlier runs spent).
    """

    __slots__ = ("_lock", "_totals", "_warned", "limits")

    def __init__(self, limits: UsageLimits | None = None, *, start: UsageTotals | None = None):
        self.limits = limits or UsageLimits()
        self._totals = start or UsageTotals()
        self._lock = threading.Lock()
        self._warned = False

    def __repr__(self) -> str:
        return f"UsageMeter({self.limits}, {self.totals})"

    @property
    def totals(self) -> UsageTotals:
        with self._lock:
            return self._totals

    def reached(self) -> tuple[str, float, float] | None:
        """The limit reached so far, if any (``UsageLimits.reached``)."""
        return self.limits.reached(self.totals)

    def admit(self, model: str = "") -> None:
        """Count one request about to be sent, or raise ``UsageLimitExceeded`` (nothing sent)."""
        with self._lock:
            hit = self.limits.reached(self._totals)
            if hit is None:
                self._totals = replace(self._totals, requests=self._totals.requests + 1)
                return
        limit, used, maximum = hit
        shown = (
            f"${used:.4f} of ${maximum:.4f}" if limit == "cost_usd" else f"{used:g} of {maximum:g}"
        )
        raise UsageLimitExceeded(
            f"the {shown_limit(limit)} limit is reached ({shown} used);"
            f" not sending{' to ' + model if model else ''}",
            limit=limit,
            used=used,
            maximum=maximum,
        )

    def record(
        self, input_tokens: int, output_tokens: int, cost_usd: float | None, model: str = ""
    ) -> None:
        """Count one answer's usage (its cost when known)."""
        with self._lock:
            t = self._totals
            self._totals = UsageTotals(
                t.requests,
                t.input_tokens + input_tokens,
                t.output_tokens + output_tokens,
                t.cost_usd + (cost_usd or 0.0),
                t.unpriced + (cost_usd is None),
            )
            warn = cost_usd is None and self.limits.max_cost_usd is not None and not self._warned
            self._warned = self._warned or warn
        if warn:
            log.warning(
                "%s has no known price: the cost limit does not count its answers",
                model or "a model",
            )
