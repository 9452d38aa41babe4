"""How ``llmpipe`` prints events: ``run``'s answer and side lines, ``replay``'s event lines."""

from __future__ import annotations

import json
from typing import TextIO

from pipeline.events import (
    Event,
    FallingBack,
    Finish,
    ReasoningDelta,
    Retrying,
    TextDelta,
    TextEnd,
    ToolCall,
    encode,
)
from pipeline.response import ResponseBuilder

__all__ = ["RunView", "describe", "isatty", "to_json"]


class RunView:
    """How ``llmpipe run`` prints events: the answer on ``out``, the rest on ``err``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out, self.err = out, err
        self.dim = isatty(err)
        self.in_text = False  # the answer's line is open on out
        self.thinking = False  # a [thinking] block is open on err
        self.answer = ResponseBuilder()  # for the summary: finish, retries

    def show(self, ev: Event) -> None:
        self.answer.feed(ev)
        if isinstance(ev, TextDelta):
            self._close_thinking()
            self.out.write(ev.text)
            self.out.flush()
            if ev.text:
                self.in_text = not ev.text.endswith("\n")
        elif isinstance(ev, ReasoningDelta):
            if not self.thinking:
                self.thinking = True
                self.err.write(self._style("[thinking] "))
            self.err.write(self._style(ev.text))
            self.err.flush()
        elif isinstance(ev, ToolCall):
            self._close_thinking()
            self.end_line()
            mark = " (arguments repaired: may be truncated)" if ev.repaired else ""
            self.err.write(f"[tool call] {ev.name}({to_json(ev.arguments)}) id={ev.id}{mark}\n")
        elif isinstance(ev, FallingBack):
            self._close_thinking()
            self.err.write(
                f"[falling back] {ev.from_model} -> {ev.to_model}"
                f" ({_REASONS.get(ev.reason, ev.reason)})\n"
            )
        elif isinstance(ev, Retrying):
            self._close_thinking()
            self.err.write(
                f"[retrying] {_REASONS.get(ev.reason, ev.reason)}: attempt {ev.attempt} failed;"
                f" trying again in {ev.delay_s:.1f}s\n"
            )
        elif isinstance(ev, TextEnd):
            self.end_line()  # now: the --trace console tree is printed as the call ends

    def end_line(self) -> None:
        """End the answer's line on stdout (and an open [thinking] block)."""
        self._close_thinking()
        if self.in_text:
            self.out.write("\n")
            self.out.flush()
            self.in_text = False

    def summary(self, elapsed_s: float) -> None:
        f, n = self.answer.finish, self.answer.retries
        if f is None:
            return
        retries = f" · {n} {'retry' if n == 1 else 'retries'}" if n else ""
        self.err.write(
            f"[{f.stop_reason}] {f.input_tokens} in / {f.output_tokens} out tokens"
            f" ({f.cached_tokens} cached, usage {f.usage_source})"
            f"{retries} · model {f.model}{_cost(f.cost_usd)} · {elapsed_s:.1f}s\n"
        )
        self.err.flush()

    def _close_thinking(self) -> None:
        if self.thinking:
            self.err.write("\n")
            self.thinking = False

    def _style(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.dim else text


_REASONS = {
    "rate_limited": "rate limited",
    "transient": "transient failure",
    "empty": "empty answer",
}


def _cost(usd: float | None) -> str:
    """`` · $0.0000045`` (the price table's, to the 1/100 millionth of a dollar), or
    nothing for a model of unknown price."""
    return f" · ${usd:.8f}".rstrip("0").rstrip(".") if usd is not None else ""


def describe(ev: Event) -> str:
    """One event as one readable line."""
    if isinstance(ev, TextDelta | ReasoningDelta):
        return f"{type(ev).__struct_config__.tag:<15} {ev.text!r}"
    if isinstance(ev, TextEnd):
        return f"{'text_end':<15} {len(ev.text)} chars: {_clip(ev.text)!r}"
    if isinstance(ev, ToolCall):
        mark = " (repaired)" if ev.repaired else ""
        return f"{'tool_call':<15} {ev.name}({to_json(ev.arguments)}) id={ev.id}{mark}"
    if isinstance(ev, Retrying):
        return f"{'retrying':<15} attempt {ev.attempt} failed ({ev.reason}); wait {ev.delay_s:.1f}s"
    if isinstance(ev, Finish):
        return (
            f"{'finish':<15} {ev.stop_reason}; {ev.input_tokens} in / {ev.output_tokens} out"
            f" tokens ({ev.cached_tokens} cached, usage {ev.usage_source}); model {ev.model}"
            + _cost(ev.cost_usd).replace(" · ", "; ")
        )
    if isinstance(ev, FallingBack):
        return f"{'falling_back':<15} {ev.from_model} -> {ev.to_model} ({ev.reason})"
    return encode(ev).decode()


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def to_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
