"""An incremental server-sent-events splitter: bytes in, ``(event, data)`` out.

Pure and synchronous (no event loop, no I/O), fed whatever the socket gave:

- lines end in ``\\n`` or ``\\r\\n``, wherever the pieces are cut (a ``\\r``
  at the end of one piece and its ``\\n`` at the start of the next are one
  line end); a lone ``\\r`` is not a line end (no provider sends one);
- ``data:`` lines of one event are joined with ``\\n``; one space after the
  colon is dropped, as the SSE format says; ``event:`` names the event
  (``"message"`` when none); ``id:`` and ``retry:`` are read and ignored;
- a line starting with ``:`` is a comment (keep-alives, OpenRouter's
  ``: OPENROUTER PROCESSING``); a line with an unknown field is ignored;
- an event is complete at the blank line after it; an event without a
  ``data:`` line is nothing; what is left unfinished when the body ends is
  dropped (``pending`` says whether there was any).

No line-length limit (aiohttp's own line reader fails above 512 KiB; Gemini
signatures are longer), and linear in the bytes however they are cut: each
byte is searched for a line end once, when its piece arrives, and the
pieces of a line longer than one piece are joined once, when it ends.
``scanned`` counts the bytes searched, so a test can check that without
timing anything.
"""

from __future__ import annotations

__all__ = ["SSESplitter"]

_DATA_SP = b"data: "


class SSESplitter:
    """``feed(piece) -> [(event, data), ...]``, complete events only (see the module)."""

    __slots__ = ("_data", "_event", "_tail", "scanned")

    def __init__(self) -> None:
        self._tail: list[bytes] = []  # the pieces of an unfinished line
        self._data: list[bytes] = []  # the data lines of the event being read
        self._event = ""
        self.scanned = 0

    @property
    def pending(self) -> bool:
        """Whether an unfinished line or event is held (the body ended mid-event)."""
        return bool(self._tail or self._data)

    def feed(self, piece: bytes) -> list[tuple[str, bytes]]:
        """The events completed by ``piece``, in order."""
        out: list[tuple[str, bytes]] = []
        lines = piece.split(b"\n")
        self.scanned += len(piece)
        last = lines.pop()  # after the last line end: the start of an unfinished line
        if self._tail:
            if not lines:  # still no line end
                self._tail.append(last)
                return out
            self._tail.append(lines[0])
            lines[0] = b"".join(self._tail)
            self.scanned += len(lines[0])
            self._tail = []
        if last:
            self._tail.append(last)
        data = self._data
        for line in lines:
            if line.startswith(_DATA_SP):  # the common case first: "data: {...}"
                data.append(line[6:-1] if line.endswith(b"\r") else line[6:])
            elif line and line != b"\r":
                self._field(line[:-1] if line.endswith(b"\r") else line)
            elif data:  # a blank line: the event is complete
                joined = data[0] if len(data) == 1 else b"\n".join(data)
                out.append((self._event or "message", joined))
                data.clear()
                self._event = ""
            else:
                self._event = ""
        return out

    def _field(self, line: bytes) -> None:
        """A line that is not blank, without its line end: a comment or a field."""
        if line.startswith(b":"):
            return
        field, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            self._data.append(value)
        elif field == b"event":
            self._event = value.decode("utf-8", "replace")
