"""The order a call tries its targets in, and which one comes next.

Pure functions over the call's request, its targets and the cool-downs, so
the rules are tested without an event loop:

- ``make_plan``: the request itself first (priority 0), then its fallbacks
  (the request's own, else the pipeline's), each as the ``Request`` that
  target is sent (its model, endpoint, key; its ``extra`` over the
  request's), stably sorted by priority; ``order="shuffle"`` shuffles
  targets of equal priority;
- ``pick``: the next target from a position on, skipping targets that are
  cooling down (unless every one left is) and, after a context-window
  failure, targets whose window is known and no larger.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import msgspec

from pipeline.cost import PriceTable
from pipeline.fallbacks import FallbackPolicy, Target
from pipeline.request import Request

__all__ = ["Planned", "make_plan", "pick"]


@dataclass(frozen=True, slots=True)
class Planned:
    """One target of a call: the request it is sent, its context window, its place."""

    request: Request
    window: int | None
    index: int


def target_request(req: Request, target: Target) -> Request:
    """``req`` as ``target`` is sent it."""
    return msgspec.structs.replace(
        req,
        model=target.model,
        api_base=target.api_base,
        api_key=target.api_key,
        extra={**req.extra, **target.extra} if target.extra else req.extra,
        fallbacks=None,
    )


def make_plan(
    req: Request,
    targets: Sequence[Target],
    policy: FallbackPolicy,
    table: PriceTable,
    *,
    shuffle: Callable[[list[Request]], None] = random.shuffle,
) -> list[Planned]:
    """The targets of ``req`` in the order they are tried."""
    chosen = req.fallbacks if req.fallbacks is not None else targets
    primary = req if req.fallbacks is None else msgspec.structs.replace(req, fallbacks=None)
    if not chosen:
        return [Planned(primary, None, 0)]
    ranked: list[tuple[int, Request, int | None]] = [
        (0, primary, table.context_window(primary.model))
    ]
    for i, target in enumerate(chosen, start=1):
        window = target.max_input_tokens or table.context_window(target.model)
        priority = target.priority if target.priority is not None else i
        ranked.append((priority, target_request(req, target), window))
    ranked.sort(key=lambda r: r[0])  # stable: the list's order among equals
    if policy.order == "shuffle":
        ranked = _shuffled(ranked, shuffle)
    return [Planned(r, w, i) for i, (_, r, w) in enumerate(ranked)]


def _shuffled(
    ranked: list[tuple[int, Request, int | None]], shuffle: Callable[[list[Request]], None]
) -> list[tuple[int, Request, int | None]]:
    out: list[tuple[int, Request, int | None]] = []
    for _, group in itertools.groupby(ranked, key=lambda r: r[0]):
        members = list(group)
        order = [m[1] for m in members]
        shuffle(order)
        by_request = {id(m[1]): m for m in members}
        out += [by_request[id(r)] for r in order]
    return out


def pick(
    plan: Sequence[Planned],
    start: int,
    min_window: int | None,
    cooling: Callable[[Request], bool],
) -> Planned | None:
    """The next target to try from ``plan[start]`` on, or ``None``.

    After a context-window failure (``min_window``: the window that was too
    small), a target whose window is known and no larger is skipped. A target
    cooling down is skipped while a later one is not; when every one left is
    cooling down, the first is tried anyway (a call with nowhere else to go).
    """
    eligible = [
        p for p in plan[start:] if min_window is None or p.window is None or p.window > min_window
    ]
    if not eligible:
        return None
    return next((p for p in eligible if not cooling(p.request)), eligible[0])


def has_free(
    plan: Sequence[Planned],
    start: int,
    min_window: int | None,
    cooling: Callable[[Request], bool],
) -> bool:
    """Is there a target from ``plan[start]`` on that is eligible and not cooling down?"""
    nxt = pick(plan, start, min_window, cooling)
    return nxt is not None and not cooling(nxt.request)
