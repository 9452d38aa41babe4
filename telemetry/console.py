"""A span exporter that prints each finished trace as a compact text tree.

For ``llmpipe demo --trace console``: when a trace's local root span ends
(the call's ``chat {model}`` span, or the application span around it), the
whole tree is printed, children indented under their parent in pipeline
order (their start times), each with its duration, outcome and key
attributes::

    chat fake-model  [openai]  12.4 ms  ok  finish=stop  tokens 10 in / 5 out  ttfc 3.1 ms
    ├─ normalize  0.1 ms  ok  events 1 -> 1  self 0.1 ms
    ├─ cache_tag  0.1 ms  ok  events 1 -> 1  self 0.1 ms
    └─ retry  12.2 ms  ok  events 1 -> 5  self 0.2 ms
       └─ attempt 1  12.1 ms  ok
          ├─ dispatch  ...

A note under an attempt that failed says what came next (``· retry:
rate_limited, waiting 0.40 s``); an error's message is shown where it arose,
its type on the attempt and the root.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

__all__ = ["TreeExporter", "render"]


class TreeExporter(SpanExporter):
    """Buffers spans per trace and prints the tree when its local root ends."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out
        self._pending: dict[int, list[ReadableSpan]] = {}
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        done: list[list[ReadableSpan]] = []
        with self._lock:
            for span in spans:
                trace_id = span.context.trace_id if span.context else 0
                self._pending.setdefault(trace_id, []).append(span)
                if span.parent is None or span.parent.is_remote:
                    done.append(self._pending.pop(trace_id))
        for group in done:
            self._write(render(group))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Print what is left (spans whose root never ended)."""
        with self._lock:
            left, self._pending = list(self._pending.values()), {}
        for group in left:
            self._write(render(group))

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def _write(self, text: str) -> None:
        out = self._out or sys.stderr
        try:
            out.write(text)
            out.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to tell
            pass


def render(spans: Sequence[ReadableSpan], *, ascii_only: bool = False) -> str:
    """The spans as an indented tree, one line per span (plus its retry and error events)."""
    ids = {s.context.span_id for s in spans if s.context}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=_order)
    tee, last, bar = ("|- ", "`- ", "|  ") if ascii_only else ("├─ ", "└─ ", "│  ")
    lines: list[str] = []

    def walk(span: ReadableSpan, prefix: str, branch: str, cont: str) -> None:
        lines.append(prefix + branch + _line(span))
        kids = children.get(span.context.span_id if span.context else None, [])
        for note in _notes(span):
            lines.append(prefix + cont + (bar if kids else "   ") + note)
        for i, kid in enumerate(kids):
            end = i == len(kids) - 1
            walk(kid, prefix + cont, last if end else tee, "   " if end else bar)

    for root in children.get(None, []):
        walk(root, "", "", "")
    return "\n".join(lines) + "\n"


def _order(span: ReadableSpan) -> tuple[int, int]:
    """Start time: pipeline order (``telemetry.spans`` starts spans in it)."""
    return (span.start_time or 0, _int((span.attributes or {}).get("llmpipe.stage.index")))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.1f} ms"


def _s(seconds: Any) -> str:
    return f"{float(seconds) * 1000:.1f} ms"


def _line(span: ReadableSpan) -> str:
    attrs: Mapping[str, Any] = span.attributes or {}
    parts = [span.name]
    provider = attrs.get("gen_ai.provider.name")
    if provider:
        parts.append(f"[{provider}]")
    if span.start_time is not None and span.end_time is not None:
        parts.append(_ms(span.end_time - span.start_time))
    outcome = attrs.get("llmpipe.stage.outcome") or attrs.get("llmpipe.outcome")
    if outcome is None:
        outcome = "error" if span.status.status_code is StatusCode.ERROR else "ok"
    parts.append(str(outcome))
    if "llmpipe.stage.events_in" in attrs:
        parts.append(
            f"events {attrs['llmpipe.stage.events_in']} -> {attrs.get('llmpipe.stage.events_out')}"
        )
    if "llmpipe.stage.self_time_s" in attrs:
        parts.append(f"self {_s(attrs['llmpipe.stage.self_time_s'])}")
    model = attrs.get("gen_ai.response.model")
    if model:
        parts.append(f"model={model}")
    reasons = attrs.get("gen_ai.response.finish_reasons")
    if reasons:
        parts.append("finish=" + ",".join(str(r) for r in reasons))
    if "gen_ai.usage.input_tokens" in attrs:
        parts.append(
            f"tokens {attrs['gen_ai.usage.input_tokens']} in"
            f" / {attrs.get('gen_ai.usage.output_tokens', 0)} out"
        )
    if "gen_ai.response.time_to_first_chunk" in attrs:
        parts.append(f"ttfc {_s(attrs['gen_ai.response.time_to_first_chunk'])}")
    retries = attrs.get("llmpipe.retries")
    if retries:
        parts.append(f"retries {retries}")
    if span.status.status_code is StatusCode.ERROR:
        etype = str(attrs.get("error.type", "")).rsplit(".", 1)[-1]
        if any(e.name == "exception" for e in span.events):  # where it arose: the message too
            parts.append(f"{etype}: {span.status.description or ''}".strip())
        else:  # a span it only passed through
            parts.append(etype)
    return "  ".join(parts)


def _notes(span: ReadableSpan) -> list[str]:
    """What a segment did after this part failed (``llmpipe.then``): a retry's cause and wait."""
    attrs = span.attributes or {}
    then = attrs.get("llmpipe.then")
    if then is None:
        return []
    if then == "retrying":
        return [
            f"· retry: {attrs.get('llmpipe.then.reason')}, waiting"
            f" {float(attrs.get('llmpipe.then.delay_s', 0.0)):.2f} s"  # type: ignore[arg-type]
        ]
    prefix = "llmpipe.then."
    values = [f"{k[len(prefix) :]}={v!s}" for k, v in attrs.items() if k.startswith(prefix)]
    return [f"· then {then!s}: " + "  ".join(values)]
