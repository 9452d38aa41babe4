"""Fallback targets and the rules for moving on to one: ``Target``, ``FallbackPolicy``.

A call has an ordered list of targets: the request itself first (its model,
``api_base``, ``api_key``, ``extra``), then its fallbacks, each a model with
its own endpoint, key and parameters. When the current target fails before
any content reached the consumer, and the failure is one the policy moves on
for (``fallback_reason``), the next target is tried; after content, never.
``stages.fallback`` is the segment that does it; this module is the data and
the pure rules, so the core (``Request.fallbacks``) can validate targets
without knowing the stage.

Targets are validated when they are made, like every ``Request`` field, and
their keys never appear in a ``repr``, an encoded event, a dump or a span.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import msgspec

from pipeline import validate
from pipeline.errors import (
    AuthenticationFailed,
    BadRequest,
    ContentFiltered,
    ContextWindowExceeded,
    EmptyResponse,
    InvalidRequest,
    MalformedResponse,
    MalformedToolCall,
    ModelNotFound,
    PipelineError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
    RetriesExhausted,
    StreamInterrupted,
    TargetCoolingDown,
    redact,
)

__all__ = [
    "DEFAULT_ON",
    "FALLBACK_REASONS",
    "FallbackPolicy",
    "FallbackReason",
    "Target",
    "TargetHealth",
    "coerce_targets",
    "fallback_reason",
]

#: why a call moved on from a target (``FallingBack.reason``)
FallbackReason = Literal[
    "rate_limited",
    "unavailable",
    "timeout",
    "empty",
    "malformed",
    "context_window",
    "content_filtered",
    "auth",
    "not_found",
    "bad_request",
    "cooling_down",
]
FALLBACK_REASONS: frozenset[str] = frozenset(get_args(FallbackReason))

#: what moves a call on by default: the deployment is unwell, or too small for the prompt
DEFAULT_ON: frozenset[FallbackReason] = frozenset(
    {"rate_limited", "unavailable", "timeout", "empty", "malformed", "context_window"}
)

#: the failures that say a deployment is unwell, counted towards its cool-down
HEALTH_REASONS: frozenset[FallbackReason] = frozenset(
    {"rate_limited", "unavailable", "timeout", "malformed", "auth", "not_found"}
)


class Target(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One model to send a call to: its own endpoint, key and parameters.

    ``api_base`` / ``api_key`` ``None`` mean the provider's defaults (its
    usual variable for the key), never the primary's. ``extra`` is merged
    over the request's ``extra``. ``priority`` orders targets (lower first;
    ``None``: the target's place in the list, the request itself being 0);
    with ``FallbackPolicy(order="shuffle")`` targets of equal priority are
    tried in random order, spreading the load. ``max_input_tokens`` is the
    model's context window when the price table does not know it (a
    ``ContextWindowExceeded`` moves on only to a larger window).
    """

    model: str
    api_base: str | None = None
    api_key: str | None = None
    extra: dict[str, Any] = {}
    priority: int | None = None
    max_input_tokens: int | None = None

    def __post_init__(self) -> None:
        validate.check_model(self.model)
        validate.check_api_key(self.api_key)
        validate.check_api_base(self.api_base)
        validate.check_extra(self.extra)
        for name in ("priority", "max_input_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidRequest(
                    name, f"must be an integer or None, got {validate.shown(value)}"
                )
        if self.max_input_tokens is not None and self.max_input_tokens <= 0:
            raise InvalidRequest("max_input_tokens", "must be a positive number of tokens")

    def __repr__(self) -> str:
        key = "None" if self.api_key is None else "'***'"
        base = redact(self.api_base) if self.api_base else None
        return f"Target(model={self.model!r}, api_base={base!r}, api_key={key})"

    __str__ = __repr__


def coerce_targets(where: str, targets: object) -> list[Target]:
    """``targets`` (``Target``s or dicts of their fields) as ``Target``s, validated.

    A bad one raises ``InvalidRequest`` naming it: ``fallbacks[1].api_base``.
    """
    if isinstance(targets, str | bytes | Mapping) or not isinstance(targets, Iterable):
        raise InvalidRequest(where, "must be a list of targets (Target or dict)")
    out: list[Target] = []
    for i, target in enumerate(targets):
        here = f"{where}[{i}]"
        try:
            if isinstance(target, Target):
                out.append(target)
            elif isinstance(target, Mapping):
                unknown = set(target) - set(Target.__struct_fields__)
                if unknown:
                    name = sorted(map(str, unknown))[0]
                    raise InvalidRequest(name, "is not a field of a target")
                if "model" not in target:
                    raise InvalidRequest("model", "is missing")
                out.append(Target(**target))
            else:
                raise InvalidRequest("", f"must be a Target or a dict, got {type(target).__name__}")
        except InvalidRequest as exc:
            raise InvalidRequest(f"{here}.{exc.field}".rstrip("."), exc.problem) from None
        except TypeError as exc:  # a value msgspec refused (a wrong type)
            raise InvalidRequest(here, str(exc)) from None
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackPolicy:
    """When a call moves on to its next target, and when a target is left alone for a while.

    ``on``: the failures that move on (``FallbackReason``s; default
    ``DEFAULT_ON``: rate limits, unavailability and timeouts once the retries
    ran out, empty and malformed answers, a prompt over the context window).
    Opt in to ``"content_filtered"``, ``"auth"`` (a wrong key is a
    configuration error you should see, so it is raised unless asked),
    ``"not_found"`` and ``"bad_request"``. ``InvalidRequest`` (nothing was
    sent), a limit reached and anything after content never move on.

    Cool-downs: a target that failed ``cooldown_after`` times within
    ``cooldown_window_s`` (rate limits, unavailability, timeouts, malformed
    answers) is skipped by every call of the pipeline for ``cooldown_s``;
    a 429 or 503 that says when to come back (``Retry-After``) cools it down
    at once, for that long (at most ``max_cooldown_s``). ``cooldown_after=0``
    turns cool-downs off. ``order``: ``"priority"`` (the targets' order) or
    ``"shuffle"`` (random among targets of equal priority).
    """

    on: frozenset[str] = DEFAULT_ON
    cooldown_after: int = 3
    cooldown_window_s: float = 60.0
    cooldown_s: float = 30.0
    max_cooldown_s: float = 300.0
    order: Literal["priority", "shuffle"] = "priority"

    def __post_init__(self) -> None:
        on = frozenset(self.on)
        unknown = sorted(on - FALLBACK_REASONS)
        if unknown:
            raise ValueError(
                f"FallbackPolicy.on: unknown reason {unknown[0]!r};"
                f" choose from {sorted(FALLBACK_REASONS)}"
            )
        object.__setattr__(self, "on", on)
        if self.cooldown_after < 0:
            raise ValueError("FallbackPolicy.cooldown_after must be >= 0")
        for name in ("cooldown_window_s", "cooldown_s", "max_cooldown_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"FallbackPolicy.{name} must be > 0")
        if self.order not in ("priority", "shuffle"):
            raise ValueError("FallbackPolicy.order must be 'priority' or 'shuffle'")

    def moves_on(self, reason: str | None) -> bool:
        """Does a failure of this kind (``fallback_reason``) move the call on?"""
        return reason == "cooling_down" or (reason is not None and reason in self.on)


def fallback_reason(exc: BaseException) -> FallbackReason | None:
    """The kind of failure ``exc`` is, for the fallback rules; ``None``: never moves on.

    ``RetriesExhausted`` is an instance of its cause's class, so it is judged
    by its cause, except when the call's deadline ran out (no time is left
    for another target either).
    """
    if not isinstance(exc, PipelineError) or isinstance(exc, StreamInterrupted | InvalidRequest):
        return None
    if isinstance(exc, RetriesExhausted) and exc.reason == "deadline":
        return None
    for kind, reason in _KINDS:
        if isinstance(exc, kind):
            return reason
    return None


_KINDS: tuple[tuple[type[BaseException], FallbackReason], ...] = (
    (TargetCoolingDown, "cooling_down"),
    (ContextWindowExceeded, "context_window"),
    (ModelNotFound, "not_found"),
    (BadRequest, "bad_request"),
    (AuthenticationFailed, "auth"),
    (ContentFiltered, "content_filtered"),
    (RateLimited, "rate_limited"),
    (ProviderTimeout, "timeout"),
    (ProviderUnavailable, "unavailable"),
    (EmptyResponse, "empty"),
    (MalformedResponse, "malformed"),
    (MalformedToolCall, "malformed"),
)


class TargetHealth(Protocol):
    """How dispatch tells a call's current target about its requests (``Context.health``).

    ``admit`` runs before each request is sent: it raises
    ``TargetCoolingDown`` when the target is cooling down and the call has
    another target to go to (so nothing is sent). ``failed`` is told of every
    failed request, which may start the target's cool-down.
    """

    def admit(self) -> None: ...

    def failed(self, error: PipelineError) -> None: ...
