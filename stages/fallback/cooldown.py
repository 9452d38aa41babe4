"""Cool-downs: a target that keeps failing is left alone for a while by every call.

One ``Cooldowns`` per pipeline (in its shared state, like the endpoint
gates), shared by every call of the pipeline from any thread or event loop:
it holds no asyncio primitive, only times on the pipeline's clock, behind a
lock. Per target it keeps the times of recent failures and the end of its
cool-down:

- a failure that says the deployment is unwell (``HEALTH_REASONS``) is
  counted; ``cooldown_after`` of them within ``cooldown_window_s`` cool the
  target down for ``cooldown_s``;
- a failure whose response says when to come back (a 429 or 503 with
  ``Retry-After``) cools it down at once, for that long (at most
  ``max_cooldown_s``): the server said so;
- when a cool-down ends, its count starts again from zero.

``Health`` is one call's view of one target (``Context.health``): dispatch
asks it before each request (``admit``) and tells it of each failure
(``failed``); the fallback segment asks it whether to leave the target now
(``should_leave``). A cooling target is only refused when the call has
another target to go to: a call with nowhere else to go still tries.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from pipeline.context import SharedState
from pipeline.errors import PipelineError, ProviderError, TargetCoolingDown
from pipeline.fallbacks import HEALTH_REASONS, FallbackPolicy, fallback_reason
from pipeline.policy import server_delay
from pipeline.request import Request

__all__ = ["Cooldowns", "Health", "cooldowns_of", "target_key"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


def target_key(req: Request) -> str:
    """What makes two targets the same deployment: model, endpoint, and (hashed) key."""
    key = hashlib.sha256(req.api_key.encode()).hexdigest()[:16] if req.api_key else ""
    return f"{req.model}|{(req.api_base or '').rstrip('/')}|{key}"


@dataclass(slots=True)
class _State:
    failures: deque[float] = field(default_factory=deque)
    until: float = 0.0


class Cooldowns:
    """Recent failures and cool-down ends per target, for one pipeline (thread-safe)."""

    def __init__(self) -> None:
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def remaining(self, key: str, now: float) -> float:
        """Seconds the target's cool-down has left (0: it may be called)."""
        with self._lock:
            state = self._states.get(key)
            return max(0.0, state.until - now) if state is not None else 0.0

    def failed(
        self, key: str, now: float, policy: FallbackPolicy, retry_after: float | None
    ) -> bool:
        """Count one failure; whether the target is cooling down now."""
        if policy.cooldown_after == 0:
            return False
        with self._lock:
            state = self._states.setdefault(key, _State())
            if state.until > now:  # already cooling: a failure in flight changes nothing
                return True
            if retry_after is not None:
                state.until = now + min(retry_after, policy.max_cooldown_s)
                state.failures.clear()
                return state.until > now
            window = state.failures
            while window and now - window[0] > policy.cooldown_window_s:
                window.popleft()
            window.append(now)
            if len(window) >= policy.cooldown_after:
                state.until = now + policy.cooldown_s
                window.clear()
                return True
            return False


def cooldowns_of(shared: SharedState) -> Cooldowns:
    """The pipeline's ``Cooldowns`` (made on first use)."""
    return shared.setdefault("fallback.cooldowns", Cooldowns)


class Health:
    """One call's view of one target: ``Context.health`` for the target's run.

    ``alternative`` says whether the call has another target to go to now.
    """

    __slots__ = ("_alternative", "_clock", "_cooldowns", "_key", "_model", "_policy")

    def __init__(
        self,
        cooldowns: Cooldowns,
        req: Request,
        policy: FallbackPolicy,
        clock: Clock,
        alternative: Callable[[], bool],
    ) -> None:
        self._cooldowns = cooldowns
        self._key = target_key(req)
        self._model = req.model
        self._policy = policy
        self._clock = clock
        self._alternative = alternative

    def remaining(self) -> float:
        return self._cooldowns.remaining(self._key, self._clock())

    def should_leave(self) -> bool:
        """The target is cooling down and the call has somewhere else to go."""
        return self.remaining() > 0 and self._alternative()

    def admit(self) -> None:
        left = self.remaining()
        if left > 0 and self._alternative():
            raise TargetCoolingDown(
                f"{self._model} is cooling down for {left:.1f}s more (it failed repeatedly);"
                " trying the next target",
                model=self._model,
                seconds=left,
            )

    def failed(self, error: PipelineError) -> None:
        reason = fallback_reason(error)
        if reason not in HEALTH_REASONS:
            return
        headers = error.headers if isinstance(error, ProviderError) else None
        self._cooldowns.failed(self._key, self._clock(), self._policy, server_delay(headers))

    def sleep(self, inner: Sleep) -> Sleep:
        """``inner``, but a wait (a backoff, an endpoint's pause) is not started for a
        target the call should leave: ``TargetCoolingDown`` is raised instead."""

        async def sleep(seconds: float) -> None:
            self.admit()
            await inner(seconds)

        return sleep
