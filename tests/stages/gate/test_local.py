"""The in-process gate's token bucket, as a pure rule (``reserve(now)`` -> seconds to wait)."""

import pytest

from stages.gate.local import EndpointGate, Rate


def test_a_burst_goes_at_once_then_one_turn_per_interval() -> None:
    gate = EndpointGate(None, Rate(per_s=10, burst=3))
    assert [gate.reserve(now=100.0) for _ in range(6)] == pytest.approx([0, 0, 0, 0.1, 0.2, 0.3])


def test_an_idle_bucket_refills_up_to_its_burst_only() -> None:
    gate = EndpointGate(None, Rate(per_s=10, burst=2))
    assert [gate.reserve(now=0.0) for _ in range(2)] == [0, 0]
    # a minute later: the burst again, not 600 saved-up turns
    assert [gate.reserve(now=60.0) for _ in range(3)] == pytest.approx([0, 0, 0.1])


def test_turns_start_when_a_block_ends() -> None:
    gate = EndpointGate(None, Rate(per_s=10, burst=2))
    gate.block(5.0)
    # the first burst at the block's end (4 s from now), then the rate
    assert [gate.reserve(now=1.0) for _ in range(4)] == pytest.approx([4.0, 4.0, 4.1, 4.2])


def test_without_a_bucket_only_the_block_counts() -> None:
    gate = EndpointGate(None)
    gate.block(2.5)
    assert [gate.reserve(now=1.0) for _ in range(3)] == [1.5, 1.5, 1.5]
    assert gate.reserve(now=3.0) == 0
