"""The gate protocol, and the one place that picks a gate for a call.

A gate is what every call to one endpoint shares: a "blocked until" time
that a 429's Retry-After moves later (``pause``), an optional bound on calls
in flight and an optional token bucket, all waited for in ``slot``. Two
implementations, one rule set:

- in-process (``stages.gate.local.EndpointGate``), the default: shared by
  the calls of one pipeline in one event loop;
- Redis (``stages.gate.redis``, ``llmpipe[redis]``): the block and the
  bucket live in Redis, so every process using the same Redis (batch
  workers on Ray, several services) backs off together. ``max_in_flight``
  stays per process.

``RetryPolicy.gate`` picks one (``"local"`` or a ``redis://`` URL); without
it the ``LLMPIPE_GATE_URL`` variable does, else the in-process gate. The
Redis client is imported only when a Redis gate is asked for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from pipeline.context import Context
from pipeline.policy import RetryPolicy
from pipeline.request import Request
from stages.gate.local import Rate, gate_for

__all__ = ["GATE_URL_VARIABLE", "Gate", "gate_url", "rate_of", "select_gate"]

#: the variable that points every process's gates at one Redis
GATE_URL_VARIABLE = "LLMPIPE_GATE_URL"

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Gate(Protocol):
    """What the retry segment needs from the gate of one endpoint."""

    def slot(self, clock: Clock, sleep: Sleep) -> AbstractAsyncContextManager[None]:
        """Wait until a call may go (block, bucket, in-flight bound); hold its turn."""
        ...

    async def pause(self, seconds: float, clock: Clock) -> None:
        """Every call to the endpoint waits ``seconds`` from now; a shorter pause
        never shortens a longer one."""
        ...


def gate_url(policy: RetryPolicy) -> str | None:
    """The Redis URL this policy's gates use, or ``None`` for the in-process gate."""
    url = policy.gate if policy.gate is not None else os.environ.get(GATE_URL_VARIABLE, "")
    url = url.strip()
    return None if url in ("", "local") else url


def rate_of(policy: RetryPolicy) -> Rate | None:
    if policy.rate_per_s is None:
        return None
    burst = policy.burst if policy.burst is not None else max(1, math.ceil(policy.rate_per_s))
    return Rate(policy.rate_per_s, burst)


def select_gate(ctx: Context, req: Request) -> Gate:
    """The gate of ``req``'s endpoint, for this pipeline and event loop."""
    policy = ctx.policy
    local = gate_for(ctx.shared, req, policy.max_in_flight, rate_of(policy))
    url = gate_url(policy)
    if url is None:
        return local
    from stages.gate.redis import redis_gate

    return redis_gate(ctx.shared, url, req, local)
