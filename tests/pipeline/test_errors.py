"""The error tree: exhausted retries that keep their cause's class, internal errors."""

from __future__ import annotations

import pickle

from pipeline import errors
from pipeline.cli.exits import exit_code, failure_kind
from pipeline.errors import (
    ClientClosed,
    EmptyResponse,
    InternalError,
    PipelineError,
    ProviderUnavailable,
    RateLimited,
    RetriesExhausted,
)


def exhausted(cause: BaseException, reason: str = "rate_limited") -> RetriesExhausted:
    try:
        raise RetriesExhausted.after(
            cause, f"gave up: {cause}", attempts=3, reason=reason
        ) from cause
    except RetriesExhausted as exc:
        return exc


def test_one_class_per_cause_class_made_once() -> None:
    a = exhausted(RateLimited("429", status_code=429))
    b = exhausted(RateLimited("429 again", status_code=429))
    c = exhausted(ProviderUnavailable("502", status_code=502), "transient")
    assert type(a) is type(b)
    assert type(a) is not type(c)
    assert type(a).__name__ == type(a).__qualname__ == "RetriesExhausted"
    assert type(a).cause_class is RateLimited
    assert RetriesExhausted.cause_class is None


def test_the_message_is_its_own_and_the_cause_is_chained() -> None:
    cause = RateLimited("slow down", status_code=429, headers={"retry-after": "2"})
    exc = exhausted(cause)
    assert str(exc) == exc.message == "gave up: slow down"
    assert cause.message == "slow down"  # the cause is left as it was
    assert exc.__cause__ is cause
    assert exc.headers == {"retry-after": "2"}


def test_it_pickles_and_comes_back_the_same_kind() -> None:
    exc = exhausted(RateLimited("slow down", status_code=429, headers={"retry-after": "2"}))
    back = pickle.loads(pickle.dumps(exc))
    assert isinstance(back, RateLimited) and isinstance(back, RetriesExhausted)
    assert (str(back), back.attempts, back.reason, back.status_code) == (
        "gave up: slow down",
        3,
        "rate_limited",
        429,
    )
    plain = pickle.loads(pickle.dumps(RetriesExhausted("x", attempts=2, reason="empty")))
    assert (type(plain), plain.attempts) == (RetriesExhausted, 2)


def test_the_command_line_still_labels_it_by_its_cause() -> None:
    assert failure_kind(exhausted(RateLimited("429", status_code=429))) == "rate_limited"
    assert exit_code(exhausted(RateLimited("429", status_code=429))) == 4
    assert failure_kind(exhausted(EmptyResponse("empty"), "empty")) == "provider"
    assert exit_code(exhausted(ProviderUnavailable("502"), "transient")) == 5


def test_internal_errors_are_not_call_failures() -> None:
    exc = ClientClosed("closed")
    assert isinstance(exc, InternalError) and isinstance(exc, RuntimeError)
    assert not isinstance(exc, PipelineError)
    assert exit_code(exc) == 70
    assert {"ClientClosed", "InternalError"} <= set(errors.__all__)
