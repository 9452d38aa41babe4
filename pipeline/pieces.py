"""``Pieces``: text that arrives as many small deltas, kept as a few strings.

An answer streams as thousands of deltas of a few characters each. Kept as a
list of those strings, every delta costs a string object (about 50 bytes on
top of its characters) for as long as the stream lives, so a stream's memory
grows by the chunk, not by the character. ``Pieces`` joins every ``BATCH``
pending deltas into one string as they come: the text is still all there
(``TextEnd`` and ``StreamInterrupted.partial_text`` need it), at about its
own size, and each character is copied twice in all, so appending stays
constant time per delta and joining linear in the text.
"""

from __future__ import annotations

__all__ = ["BATCH", "Pieces"]

#: deltas joined into one string at a time
BATCH = 128


class Pieces:
    """``append(piece)`` as deltas come, ``str(pieces)`` for the whole text so far."""

    __slots__ = ("_blocks", "_pending")

    def __init__(self) -> None:
        self._blocks: list[str] = []
        self._pending: list[str] = []

    def append(self, piece: str) -> None:
        pending = self._pending
        pending.append(piece)
        if len(pending) >= BATCH:
            self._blocks.append("".join(pending))
            pending.clear()

    def __bool__(self) -> bool:
        return bool(self._blocks or self._pending)

    def __len__(self) -> int:
        """How many strings are held (not the text's length): at most ``BATCH``
        plus one per ``BATCH`` deltas."""
        return len(self._blocks) + len(self._pending)

    def __str__(self) -> str:
        if not self._blocks:
            return "".join(self._pending)
        return "".join(self._blocks) + "".join(self._pending)

    def __repr__(self) -> str:
        return f"Pieces({len(self)} strings)"
