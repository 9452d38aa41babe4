"""The one msgspec base every event derives from.

It lives apart from ``events`` so that ``request`` (which defines the
``Request`` event) and ``events`` (which defines the union) need not import
each other.
"""

from __future__ import annotations

import msgspec


class EventBase(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Frozen, keyword-only, tagged: events are values that round-trip through JSON."""
