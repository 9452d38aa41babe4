"""``setup()``: the OpenTelemetry SDK for the CLI and for applications that want it.

The library itself uses only the API (``telemetry.instrument``, ``.spans``); an application
that configures OpenTelemetry itself needs nothing from here. ``setup``
reads the standard variables:

- ``OTEL_TRACES_EXPORTER``: ``otlp``, ``console`` or ``none`` (the default),
  when no exporter is passed;
- ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or ``..._TRACES_PROTOCOL``):
  ``http/protobuf`` (the default) or ``grpc`` (needs the ``grpc`` extra);
- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``), headers,
  timeout, compression: read by the OTLP exporters themselves;
- ``OTEL_METRICS_EXPORTER``: ``otlp`` or ``console`` turn the GenAI metrics
  on; the default is ``none``, because Jaeger takes no metrics;
- ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``; ``OTEL_SDK_DISABLED``.

The SDK is imported here, inside ``setup``, never on ``import pipeline``.
Export failures are reported in one line naming the endpoint, and
``shutdown(timeout_s=...)`` bounds the last flush (``telemetry.flush``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, TextIO

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace

from pipeline.secrets import guard_logger
from telemetry.conventions import openinference_on
from telemetry.flush import EXPORTER_LOGGERS, ExportReport, background, endpoint
from telemetry.instrument import CONVENTIONS_ATTR, TelemetryInstrument, meters_off, tracing_off

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = ["TelemetryHandle", "setup"]

log = guard_logger("llmpipe.telemetry")

_EXPORTERS = ("otlp", "console", "none")
_PROTOCOLS = ("http/protobuf", "grpc")


class TelemetryHandle:
    """What ``setup`` configured: its providers (``None`` when it configured nothing).

    ``shutdown`` flushes and shuts them down (idempotent; a no-op when setup
    left an application's own providers in place). ``instrument()`` is a
    pipeline instrument bound to these providers, for code that does not
    use the global ones (``set_global=False``).
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        *,
        exporters: tuple[Any, ...] = (),
        report: ExportReport | None = None,
    ) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._exporters = exporters  # the OTLP ones, told to stop when time is up
        self._report = report
        self._lock = threading.Lock()
        self._closed = False
        if report is not None:
            for name in EXPORTER_LOGGERS:
                logging.getLogger(name).addFilter(report)

    def __repr__(self) -> str:
        return (
            f"TelemetryHandle(traces={self.tracer_provider is not None},"
            f" metrics={self.meter_provider is not None})"
        )

    def instrument(
        self, *, capture_content: bool | None = None, conventions: str | None = None
    ) -> TelemetryInstrument:
        return TelemetryInstrument(
            tracer_provider=self.tracer_provider,
            meter_provider=self.meter_provider,
            capture_content=capture_content,
            conventions=conventions,
        )

    def force_flush(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.force_flush()
        if self.meter_provider is not None:
            self.meter_provider.force_flush()

    def shutdown(self, timeout_s: float | None = None) -> None:
        """Flush and shut down; with ``timeout_s``, wait at most about that long.

        A collector that does not answer in time (not running, unreachable)
        is given up on: the exporters are told to stop retrying and the
        spans not sent are dropped, with one warning line. Without
        ``timeout_s`` the exporters' own timeouts apply (10 s per export).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if timeout_s is None:
            self._shutdown_providers()
            self._remove_report()
            return
        report = self._report
        if report is not None:
            report.failed.clear()  # only a failure of this last flush counts
        flushing = background(self._shutdown_providers)
        deadline = time.monotonic() + timeout_s
        while flushing.is_alive() and time.monotonic() < deadline:
            if report is not None and report.failed.is_set():
                break  # the collector is not there: its backoff would only delay the exit
            flushing.join(0.02)
        if flushing.is_alive():
            for exporter in self._exporters:
                background(exporter.shutdown).join(0.2)  # ends their retry wait
            flushing.join(0.5)
            if self._report is None or self._report.last is None:  # not said yet
                log.warning(
                    "telemetry: the collector did not take the last spans within %.1fs;"
                    " they are dropped",
                    timeout_s,
                )
        if not flushing.is_alive():  # else its late messages still need the filter
            self._remove_report()

    def _shutdown_providers(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is not None:
                try:
                    provider.shutdown()
                except Exception:  # exporting must never fail the program at exit
                    log.warning("telemetry: shutting down %r failed", provider, exc_info=True)

    def _remove_report(self) -> None:
        if self._report is not None:
            for name in EXPORTER_LOGGERS:
                logging.getLogger(name).removeFilter(self._report)


def setup(
    exporter: str | None = None,
    *,
    out: TextIO | None = None,
    service_name: str = "llmpipe",
    set_global: bool = True,
    conventions: str | None = None,
) -> TelemetryHandle:
    """Configure the OpenTelemetry SDK for llmpipe's spans (and metrics, if asked).

    ``exporter``: ``"otlp"``, ``"console"`` or ``"none"`` (a comma-separated
    list also works); ``None`` reads ``OTEL_TRACES_EXPORTER`` (default none).
    ``console`` prints a text tree of each finished trace to ``out``
    (default ``sys.stderr``). With ``set_global`` (the default) the providers
    become OpenTelemetry's global ones, unless the application already set
    its own: then nothing is touched and the handle's ``shutdown`` does
    nothing. With ``set_global=False`` nothing global changes: use
    ``handle.instrument()`` (tests do). ``conventions``: ``"genai"`` or
    ``"genai,openinference"`` (``telemetry.conventions``; ``None``: the
    ``LLMPIPE_TRACE_CONVENTIONS`` variable, else both), for every call traced
    through the tracer provider set up here.
    """
    if conventions is not None:
        openinference_on(conventions)  # a wrong value fails here
    kinds = _kinds(exporter if exporter is not None else os.environ.get("OTEL_TRACES_EXPORTER"))
    metric_kinds = _kinds(os.environ.get("OTEL_METRICS_EXPORTER"), variable="OTEL_METRICS_EXPORTER")
    if _true(os.environ.get("OTEL_SDK_DISABLED")):
        return TelemetryHandle()
    own_tracing = set_global and not tracing_off(trace.get_tracer_provider())
    own_metrics = set_global and not meters_off(otel_metrics.get_meter_provider())
    if own_tracing:
        log.debug("telemetry: the application configured tracing; setup leaves it")
        kinds = ()
    if own_metrics:
        metric_kinds = ()
    if not kinds and not metric_kinds:
        return TelemetryHandle()

    resource = _resource(service_name)
    exporters: list[Any] = []
    tracer_provider = _tracer_provider(kinds, resource, out, exporters) if kinds else None
    if tracer_provider is not None and conventions is not None:
        setattr(tracer_provider, CONVENTIONS_ATTR, conventions)  # read by TelemetryInstrument
    meter_provider = (
        _meter_provider(metric_kinds, resource, out, exporters) if metric_kinds else None
    )
    if set_global:
        if tracer_provider is not None:
            trace.set_tracer_provider(tracer_provider)
        if meter_provider is not None:
            otel_metrics.set_meter_provider(meter_provider)
    report = None
    if exporters:
        report = ExportReport(
            {
                "spans": endpoint("traces", _protocol("TRACES")),
                "metrics": endpoint("metrics", _protocol("METRICS")),
            }
        )
    return TelemetryHandle(
        tracer_provider, meter_provider, exporters=tuple(exporters), report=report
    )


def _kinds(value: str | None, *, variable: str = "OTEL_TRACES_EXPORTER") -> tuple[str, ...]:
    names = [v.strip().lower() for v in (value or "none").split(",") if v.strip()]
    for name in names:
        if name not in _EXPORTERS:
            raise ValueError(
                f"unknown exporter {name!r} (from {variable} or --trace): use one of"
                f" {', '.join(_EXPORTERS)}"
            )
    return tuple(dict.fromkeys(n for n in names if n != "none"))


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _protocol(signal: str) -> str:
    value = (
        os.environ.get(f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if value not in _PROTOCOLS:
        raise ValueError(
            f"OTLP protocol {value!r} is not supported: use http/protobuf or grpc"
            " (OTEL_EXPORTER_OTLP_PROTOCOL)"
        )
    return value


def _resource(service_name: str) -> Resource:
    from opentelemetry.sdk.resources import Resource

    attrs: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the variable wins over the argument
        attrs["service.name"] = service_name
    return Resource.create(attrs)


def _tracer_provider(
    kinds: tuple[str, ...], resource: Resource, out: TextIO | None, otlp: list[Any]
) -> TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=resource)
    for kind in kinds:
        if kind == "console":
            from telemetry.console import TreeExporter

            provider.add_span_processor(SimpleSpanProcessor(TreeExporter(out or sys.stderr)))
        else:
            otlp.append(_otlp_span_exporter())
            provider.add_span_processor(BatchSpanProcessor(otlp[-1]))
    return provider


def _otlp_span_exporter() -> SpanExporter:
    if _protocol("TRACES") == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcSpanExporter,
            )
        except ImportError as exc:
            raise RuntimeError(
                "OTLP over gRPC needs the grpc extra: pip install 'llmpipe[grpc]'"
                " (or use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)"
            ) from exc
        return GrpcSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _meter_provider(
    kinds: tuple[str, ...], resource: Resource, out: TextIO | None, otlp: list[Any]
) -> MeterProvider:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )

    readers = []
    for kind in kinds:
        exporter: MetricExporter
        if kind == "console":
            exporter = ConsoleMetricExporter(out=out or sys.stderr)
        else:
            exporter = _otlp_metric_exporter()
            otlp.append(exporter)
        readers.append(PeriodicExportingMetricReader(exporter))
    return MeterProvider(resource=resource, metric_readers=readers)


def _otlp_metric_exporter() -> MetricExporter:
    if _protocol("METRICS") == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcMetricExporter,
            )
        except ImportError as exc:
            raise RuntimeError("OTLP over gRPC needs the grpc extra: 'llmpipe[grpc]'") from exc
        return GrpcMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter()
