"""The SSE splitter: bytes in, events out, however the bytes are cut; linear in the bytes."""

from __future__ import annotations

import pytest

from stages.dispatch.openai.sse import SSESplitter

BODY = (
    b": keep-alive\n\n"
    b'data: {"a": 1}\n\n'
    b"event: ping\ndata: {}\n\n"
    b"data: line one\r\ndata: line two\r\n\r\n"
    b"id: 7\nretry: 100\nunknown: x\ndata:no-space\n\n"
    b"event: only-a-name\n\n"
    b"data:  two spaces\n\n"
    b"data: [DONE]\n\n"
)
EVENTS = [
    ("message", b'{"a": 1}'),
    ("ping", b"{}"),
    ("message", b"line one\nline two"),
    ("message", b"no-space"),
    ("message", b" two spaces"),
    ("message", b"[DONE]"),
]


def split(pieces: list[bytes]) -> list[tuple[str, bytes]]:
    splitter = SSESplitter()
    out: list[tuple[str, bytes]] = []
    for piece in pieces:
        out += splitter.feed(piece)
    assert not splitter.pending
    return out


def test_one_piece() -> None:
    assert split([BODY]) == EVENTS


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16, 64])
def test_cut_anywhere_gives_the_same_events(size: int) -> None:
    """Every cut: inside a field name, between CR and LF, between the two line ends."""
    assert split([BODY[i : i + size] for i in range(0, len(BODY), size)]) == EVENTS


def test_a_cut_between_cr_and_lf_is_one_line_end() -> None:
    assert split([b"data: x\r", b"\n\r", b"\n"]) == [("message", b"x")]


def test_an_event_is_complete_only_at_its_blank_line() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a": 1}\n') == []
    assert splitter.pending
    assert splitter.feed(b"\n") == [("message", b'{"a": 1}')]
    assert not splitter.pending


def test_what_is_unfinished_when_the_body_ends_is_not_an_event() -> None:
    splitter = SSESplitter()
    assert splitter.feed(b'data: {"a": 1}\n\ndata: {"cut') == [("message", b'{"a": 1}')]
    assert splitter.pending


def test_comments_and_nameless_events_give_nothing() -> None:
    assert split([b": OPENROUTER PROCESSING\n\n:\n\nevent: ping\n\n\n\n"]) == []


def test_a_lone_cr_is_not_a_line_end() -> None:
    assert split([b"data: a\rb\n\n"]) == [("message", b"a\rb")]


def test_the_event_name_does_not_leak_into_the_next_event() -> None:
    assert split([b"event: error\ndata: x\n\ndata: y\n\n"]) == [("error", b"x"), ("message", b"y")]


def test_a_five_megabyte_line_in_small_pieces_is_read_in_linear_work() -> None:
    """aiohttp's own line reader fails above 512 KiB; the splitter has no limit, and
    searches each byte once and joins the line once: the work it counts stays within
    twice the bytes (searching again from the start of the line on every piece, the
    usual mistake, would count about 2,400 times the bytes here)."""
    payload = b'{"content": "' + b"x" * 5_000_000 + b'"}'
    body = b"data: " + payload + b"\n\n"
    splitter = SSESplitter()
    out: list[tuple[str, bytes]] = []
    for i in range(0, len(body), 1024):
        out += splitter.feed(body[i : i + 1024])
    assert out == [("message", payload)]
    assert splitter.scanned <= 2 * len(body)
