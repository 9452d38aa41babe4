"""The delay rule reproduces the reference's 17 cases exactly (jitter off)."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from pipeline.policy import RetryPolicy, jittered, retry_delay, server_delay


@pytest.mark.parametrize(("attempt", "expected"), [(0, 2), (1, 4), (2, 8), (3, 16)])
def test_fallback_exponential_backoff(attempt: int, expected: float) -> None:
    assert retry_delay(attempt) == expected


def test_max_delay_cap() -> None:
    assert retry_delay(10) == 120


def test_custom_max_delay() -> None:
    assert retry_delay(5, max_delay=10) == 10


#: the reference's Retry-After cases: (headers, delay); the compat adapter's tests reuse them
REFERENCE_HEADER_CASES = [
    pytest.param({"retry-after-ms": "5000"}, 5.0, id="ms"),
    pytest.param({"retry-after-ms": "1500"}, 1.5, id="ms-fractional"),
    pytest.param({"retry-after": "3"}, 3.0, id="seconds"),
    pytest.param({"retry-after": "2.5"}, 2.5, id="seconds-fractional"),
    pytest.param({"retry-after-ms": "2000", "retry-after": "10"}, 2.0, id="ms-takes-priority"),
    pytest.param({"retry-after": "-5"}, 0, id="negative-clamped"),
    pytest.param({"retry-after-ms": "-1000"}, 0, id="negative-ms-clamped"),
    pytest.param({"retry-after": "not-a-number-or-date"}, 2, id="invalid-falls-back"),
    pytest.param(
        {"retry-after-ms": "garbage", "retry-after": "7"}, 7.0, id="invalid-ms-falls-to-seconds"
    ),
    pytest.param({"retry-after": "3600"}, 120, id="capped"),
    pytest.param({"retry-after-ms": "300000"}, 120, id="ms-capped"),
]


@pytest.mark.parametrize(("headers", "expected"), REFERENCE_HEADER_CASES)
def test_server_headers(headers: dict[str, str], expected: float) -> None:
    assert retry_delay(0, headers) == expected


def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3.0 <= retry_delay(0, {"retry-after": when}) <= 6.0


def test_http_date_is_measured_against_the_given_now() -> None:
    when = datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC)
    now = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    assert (
        retry_delay(0, {"retry-after": format_datetime(when, usegmt=True)}, now=lambda: now) == 10
    )


@pytest.mark.parametrize("headers", [None, {}])
def test_no_response_headers(headers: dict[str, str] | None) -> None:
    assert retry_delay(0, headers) == 2


def test_header_names_are_case_insensitive() -> None:
    assert server_delay({"Retry-After-Ms": "250"}) == 0.25


def test_jitter_spreads_but_stays_capped() -> None:
    assert jittered(8, rand=lambda: 0.0) == 4
    assert jittered(8, rand=lambda: 0.999) == pytest.approx(11.992)
    assert jittered(100, rand=lambda: 0.999, cap=120) == 120


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="transient_retries"):
        RetryPolicy(transient_retries=-1)
    with pytest.raises(ValueError, match="idle_timeout_s"):
        RetryPolicy(idle_timeout_s=0)
    with pytest.raises(ValueError, match="max_in_flight"):
        RetryPolicy(max_in_flight=0)


def test_budgets_per_cause() -> None:
    p = RetryPolicy()
    assert (p.budget("rate_limited"), p.budget("transient"), p.budget("empty")) == (10, 3, 3)


def test_the_default_policy_bounds_every_wait_for_the_provider() -> None:
    """No provider output can hang a call with the defaults (None turns a limit off)."""
    policy = RetryPolicy()
    assert policy.first_chunk_timeout_s == 300.0
    assert policy.idle_timeout_s == 120.0
    off = RetryPolicy(first_chunk_timeout_s=None, idle_timeout_s=None)
    assert off.first_chunk_timeout_s is None and off.idle_timeout_s is None
