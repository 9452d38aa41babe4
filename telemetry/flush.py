"""Exporting at exit without hanging, and export failures in one line.

The OTLP exporters retry a failed export with backoff for up to their
timeout (10 s), logging a warning per retry, and the SDK's shutdown waits
for them: a command run with ``--trace otlp`` and no collector listening
would print a screenful of warnings and hang for many seconds after its
work was done. Here:

- the handle runs its shutdown on a daemon thread (``background``) and
  waits at most the time it was given, and no longer once an export has
  failed (the collector refused the connection: waiting for the exporter's
  backoff would not help); then it tells its exporters to stop
  (``exporter.shutdown()`` ends their retry wait) and the program goes on,
  with the spans not sent;
- ``ExportReport``, a filter on the exporters' loggers, turns their
  failure messages into one line naming the endpoint and the reason
  (again at most once a minute), and drops the retry chatter (all of it is
  kept when ``llmpipe.telemetry`` logs at DEBUG, e.g. ``--debug``);
- a collector without a metrics endpoint (Phoenix and Jaeger answer
  ``/v1/metrics`` with 404, or gRPC ``UNIMPLEMENTED``) is said once, with
  what to do, and never again: it will not grow one while the program runs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable

__all__ = ["EXPORTER_LOGGERS", "ExportReport", "background", "endpoint"]

log = logging.getLogger("llmpipe.telemetry")

#: the loggers the OTLP exporters (HTTP and gRPC, spans and metrics) report failures on
EXPORTER_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.common.http",
)

_FAILURE = ("Transient error", "Failed to export")
_CHATTER = ("Shutdown in progress", "Exporter already shutdown", "OTLP client already shutdown")
_REPORT_EVERY_S = 60.0


def background(fn: Callable[[], object]) -> threading.Thread:
    """``fn`` started on a daemon thread: the interpreter's exit does not wait for it."""
    thread = threading.Thread(target=fn, name="llmpipe-telemetry-shutdown", daemon=True)
    thread.start()
    return thread


def endpoint(signal: str, protocol: str) -> str:
    """Where the OTLP exporter of ``signal`` ("traces", "metrics") sends, as the
    standard variables say (the exporters read the same ones)."""
    own = os.environ.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if own:
        return own
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if protocol == "grpc":
        return base or "localhost:4317"
    return f"{(base or 'http://localhost:4318').rstrip('/')}/v1/{signal}"


class ExportReport(logging.Filter):
    """One warning line for the exporters' failure messages; see the module docstring."""

    def __init__(self, endpoints: dict[str, str], clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.endpoints = endpoints  # "spans" / "metrics" -> URL
        self.clock = clock
        self.last: float | None = None
        self.failed = threading.Event()  # an export failed (since the last clear())
        self.no_metrics = False  # the collector has no metrics endpoint: said once

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        failure = text.startswith(_FAILURE)
        if not failure and not text.startswith(_CHATTER):
            return True  # not about a failed export: as it is
        message = record.getMessage()
        if failure and _no_metrics_endpoint(message):
            # the collector is there (for spans): this must not cut the last flush short
            if self.no_metrics or log.isEnabledFor(logging.DEBUG):
                return log.isEnabledFor(logging.DEBUG)
            self.no_metrics = True
            record.msg = (
                "telemetry: the collector at %s has no metrics endpoint (%s), as Phoenix and"
                " Jaeger have none; metrics are not exported (OTEL_METRICS_EXPORTER=none stops"
                " trying; spans are not affected)"
            )
            record.args = (self.endpoints.get("metrics", "the collector"), _reason(message))
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if failure:
            self.failed.set()
        if log.isEnabledFor(logging.DEBUG):
            return True
        now = self.clock()
        if not failure or (self.last is not None and now - self.last < _REPORT_EVERY_S):
            return False
        self.last = now
        what = "metrics" if "metric" in message.lower() else "spans"
        record.msg = "telemetry: cannot export %s to %s (%s); they are dropped"
        record.args = (what, self.endpoints.get(what, "the collector"), _reason(message))
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _no_metrics_endpoint(message: str) -> bool:
    lowered = message.lower()
    return "metric" in lowered and (
        re.search(r"code: 404\b", message) is not None or "unimplemented" in lowered
    )


def _reason(message: str) -> str:
    lowered = message.lower()
    if "refused" in lowered:
        return "connection refused"
    if any(s in lowered for s in ("name or service not known", "nodename nor servname", "getaddr")):
        return "host not found"
    if "timed out" in lowered or "timeout" in lowered or "deadline" in lowered:
        return "timed out"
    if "unavailable" in lowered:
        return "unavailable"
    if "unimplemented" in lowered:
        return "gRPC UNIMPLEMENTED"
    code = re.search(r"code: (\d{3})", message)
    return f"HTTP {code[1]}" if code else "the collector did not take them"
