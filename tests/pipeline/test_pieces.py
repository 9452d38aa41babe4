"""``Pieces``: a stream's text kept at about its own size, whatever the number of deltas."""

import sys

from pipeline.events import TextDelta
from pipeline.pieces import BATCH, Pieces
from pipeline.response import ResponseBuilder


def test_the_text_is_all_there_in_order() -> None:
    pieces = Pieces()
    assert not pieces and str(pieces) == ""
    words = [f"w{i} " for i in range(1000)]
    for n, word in enumerate(words, 1):
        pieces.append(word)
        if n in (1, BATCH - 1, BATCH, BATCH + 1, 999):
            assert str(pieces) == "".join(words[:n])
    assert pieces and str(pieces) == "".join(words)


def test_many_deltas_are_held_as_few_strings() -> None:
    """An object per delta is what made a stream's memory grow by the chunk: 100,000
    deltas are held as at most BATCH + 100,000 / BATCH strings."""
    pieces = Pieces()
    for i in range(100_000):
        pieces.append(str(i % 10))
    assert len(pieces) <= BATCH + 100_000 // BATCH
    held = sum(sys.getsizeof(s) for s in pieces._blocks + pieces._pending)
    assert held < 2 * 100_000  # about a byte a character, not ~50 bytes a delta


def test_the_response_builder_keeps_its_text_as_pieces() -> None:
    builder = ResponseBuilder()
    for i in range(5000):
        builder.feed(TextDelta(text=str(i % 10)))
    assert builder.text == "".join(str(i % 10) for i in range(5000))
    assert isinstance(builder._text, Pieces) and len(builder._text) <= BATCH + 5000 // BATCH
