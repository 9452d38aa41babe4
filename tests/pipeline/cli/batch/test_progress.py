"""The batch progress display: a live bar on a terminal, plain periodic lines elsewhere."""

from __future__ import annotations

import io

import pytest

from pipeline.cli.batch.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_rewritten_in_place_with_every_count() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(10, out, tty=True, clock=clock, width=lambda: 120)
    clock.now += 2.0
    p.retried()
    clock.now += 0.5
    p.finished(ok=True, input_tokens=1200, output_tokens=300)
    clock.now += 0.5
    p.finished(ok=False)
    text = out.getvalue()
    assert "\n" not in text  # the bar is redrawn, never scrolled
    last = text.split("\r\x1b[2K")[-1]
    assert last.startswith("[######------------------------]")
    assert " 2/10 0.7/s eta 0:12  tok 1.2k in/300 out  retries 1  errors 1" in last
    p.close()
    assert out.getvalue().endswith("errors 1\n")  # the final bar stays on screen


def test_the_bar_redraws_at_most_ten_times_a_second() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(1000, out, tty=True, clock=clock, width=lambda: 100)
    for _ in range(50):
        clock.now += 0.01
        p.finished(ok=True)
    assert out.getvalue().count("\r") == 5  # 0.5 s of updates


def test_the_bar_fits_a_narrow_terminal() -> None:
    p = Progress(10, io.StringIO(), tty=True, clock=Clock(), width=lambda: 50)
    assert len(p.bar()) <= 49


def test_messages_go_above_the_bar() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(3, out, tty=True, clock=clock, width=lambda: 100)
    p.finished(ok=True)
    p.note("llmpipe: id 'x' failed")
    text = out.getvalue()
    # the bar is erased, the message printed on its own line, and the bar redrawn below
    assert "\r\x1b[2Kllmpipe: id 'x' failed\n\r\x1b[2K[" in text


def test_off_a_terminal_a_plain_line_every_interval_and_one_at_the_end() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(4, out, tty=False, interval_s=5.0, clock=clock)
    p.update()
    for _ in range(4):  # at 2, 4, 6 and 8 s: a line is due at 6 s only
        clock.now += 2.0
        p.finished(ok=True, input_tokens=10, output_tokens=5)
    assert out.getvalue().splitlines() == [
        "llmpipe batch: 3/4 done (75%), 0.5/s, tokens 30 in / 15 out, 0 retries, 0 errors,"
        " 0:06 elapsed"
    ]
    p.close()
    assert out.getvalue().splitlines()[-1].startswith("llmpipe batch: 4/4 done (100%)")
    assert "\r" not in out.getvalue()


def test_disabled_progress_prints_only_messages() -> None:
    out = io.StringIO()
    p = Progress(2, out, tty=True, clock=Clock(), enabled=False)
    p.finished(ok=True)
    p.note("a failure")
    p.close()
    assert out.getvalue() == "a failure\n"


def test_the_rate_is_over_the_last_seconds_not_since_the_start() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(100, out, tty=False, clock=clock)
    for _ in range(60):  # a slow start (importing litellm, say): the ticker updates
        clock.now += 1.0
        p.update()
    for _ in range(20):  # then 4 per second
        clock.now += 0.25
        p.finished(ok=True)
    assert p.rate() == pytest.approx(20 / 10.0, rel=0.1)  # 10 s window: 5 s idle, 5 s busy
    for _ in range(40):
        clock.now += 0.25
        p.finished(ok=True)
    assert p.rate() == pytest.approx(4.0, rel=0.05)
