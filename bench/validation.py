"""How long a Request takes to validate itself, on large and deep input.

Validation runs whenever a ``Request`` is built, including each time a stage
derives one (``normalize``, ``cache_tag``, ``tool_compat``), so it must stay
linear and cheap. Prints the best of several runs, in milliseconds, for:

- a 10 MB user message, ASCII and not (validation alone);
- the same message through ``normalize`` and ``cache_tag`` (every re-validation
  a call makes before it is sent);
- a tool schema of 10,000 properties; ``extra`` nested to the depth limit;
- the refusal of ``extra`` nested 100,000 deep (it stops at the limit).

Usage: ``python bench/validation.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from pipeline import Request
from pipeline.errors import InvalidRequest
from pipeline.profiles import resolve
from pipeline.validate import MAX_DEPTH
from stages.cache_tag import tag_system
from stages.normalize import normalize_request

TEN_MB = 10 * 1024 * 1024


def best_ms(fn: Callable[[], object], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out


def request(content: str, **more: Any) -> Request:
    return Request(
        model="anthropic/claude-x",
        messages=[{"role": "user", "content": content}],
        system="be brief",
        **more,
    )


def refused(**fields: Any) -> Callable[[], None]:
    def run() -> None:
        try:
            Request(model="m", messages=[{"role": "user", "content": "x"}], **fields)
        except InvalidRequest:
            return
        raise AssertionError("expected InvalidRequest")

    return run


def main() -> None:
    ascii_text = "x" * TEN_MB
    wide_text = "é😀" * (TEN_MB // 6)  # 10 MB of UTF-8
    profile = resolve("anthropic/claude-x")
    props = {f"p{i}": {"type": "string", "description": "d" * 20} for i in range(10_000)}
    rows = [
        ("10 MB message, ASCII", lambda: request(ascii_text)),
        ("10 MB message, not ASCII", lambda: request(wide_text)),
        (
            "10 MB message, normalize + cache_tag",
            lambda: tag_system(normalize_request(request(ascii_text), profile)),
        ),
        (
            "10 MB message, not ASCII, normalize + cache_tag",
            lambda: tag_system(normalize_request(request(wide_text), profile)),
        ),
        (
            "tool schema, 10,000 properties",
            lambda: request(
                "x", tools=[{"name": "t", "parameters": {"type": "object", "properties": props}}]
            ),
        ),
        (
            f"extra nested {MAX_DEPTH} deep",
            lambda: request("x", extra={"extra_body": {"a": nested(MAX_DEPTH - 1)}}),
        ),
        (
            "extra nested 100,000 deep: refused",
            refused(extra={"extra_body": {"a": nested(100_000)}}),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    for name, fn in rows:
        print(f"{name:<{width}}  {best_ms(fn):8.2f} ms")


if __name__ == "__main__":
    main()
