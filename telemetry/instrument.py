"""``TelemetryInstrument``: the pipeline's instrument; it decides once per call whether to trace.

The default pipeline installs one. On every call it looks at the tracer and
meter providers (its own, else OpenTelemetry's global ones): when both are
the API's stand-ins (no SDK set up), the call's stages are chained as they
are, so telemetry costs nothing per chunk; otherwise a ``CallTelemetry``
(``telemetry.spans``) becomes the call's instrument and wraps every stage.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from opentelemetry import metrics as otel_metrics
from opentelemetry import trace
from opentelemetry.trace import Tracer

from pipeline.context import Context
from pipeline.events import Event
from pipeline.runner import run_stages
from pipeline.secrets import guard_logger
from pipeline.stage import PLAIN, PlainInstrument, Stage
from telemetry import genai
from telemetry.conventions import openinference_on
from telemetry.doubles import warn_if_doubled
from telemetry.metrics import CallMetrics
from telemetry.spans import CallTelemetry

__all__ = ["CONVENTIONS_ATTR", "SCOPE", "TelemetryInstrument", "meters_off", "tracing_off"]

log = guard_logger("llmpipe.telemetry")

#: the instrumentation scope of every span and metric
SCOPE = "llmpipe"
_VERSION = "0.1.0"
#: where ``telemetry.setup(conventions=...)`` leaves its choice: on the tracer provider it made
CONVENTIONS_ATTR = "llmpipe_conventions"

try:  # the API's stand-in before an SDK is set; private, so looked up defensively
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    _NO_METERS: tuple[type, ...] = (otel_metrics.NoOpMeterProvider, _ProxyMeterProvider)
except ImportError:  # pragma: no cover - another API version
    _NO_METERS = (otel_metrics.NoOpMeterProvider,)
_NO_TRACERS = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def tracing_off(provider: object) -> bool:
    """Is this the API's stand-in (no SDK set up), so that no span could record?"""
    return isinstance(provider, _NO_TRACERS)


def meters_off(provider: object) -> bool:
    """Is this the API's stand-in meter provider?"""
    return isinstance(provider, _NO_METERS)


class TelemetryInstrument(PlainInstrument):
    """Spans (and GenAI metrics) for every call of a pipeline, through the OpenTelemetry API.

    ``tracer_provider`` / ``meter_provider``: where spans and metrics go
    (default: the global providers, looked up on every call, so an SDK set up
    after the pipeline was built is used). ``capture_content``: record
    message and answer content (default: the
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` variable).
    ``conventions``: ``"genai"`` or ``"genai,openinference"`` (default: what
    ``telemetry.setup(conventions=...)`` gave the tracer provider, else the
    ``LLMPIPE_TRACE_CONVENTIONS`` variable, else both; ``telemetry.conventions``).
    """

    __slots__ = (
        "_capture",
        "_conventions",
        "_meter_provider",
        "_meters",
        "_tracer_provider",
        "_tracers",
    )

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: otel_metrics.MeterProvider | None = None,
        capture_content: bool | None = None,
        conventions: str | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._capture = capture_content
        if conventions is not None:
            openinference_on(conventions)  # a wrong value fails here, not on the first call
        self._conventions = conventions
        self._tracers: tuple[trace.TracerProvider, Tracer] | None = None
        self._meters: tuple[otel_metrics.MeterProvider, CallMetrics] | None = None

    def __repr__(self) -> str:
        return "TelemetryInstrument()"

    def run(
        self, stages: tuple[Stage, ...], upstream: AsyncIterator[Event], ctx: Context
    ) -> AsyncIterator[Event]:
        try:
            tracer = self._tracer()
            meters = self._call_metrics()
        except Exception:
            log.debug("telemetry: no tracer or meter", exc_info=True)
            tracer = meters = None
        if tracer is None and meters is None:
            ctx.instrument = PLAIN
            return run_stages(stages, upstream, ctx)
        capture, oi = genai.capture_enabled(self._capture), False
        if tracer is not None:
            warn_if_doubled()
            try:
                oi = openinference_on(self._conventions or self._provider_conventions())
            except ValueError as exc:  # a wrong LLMPIPE_TRACE_CONVENTIONS: said, never fatal
                log.warning("telemetry: %s; using genai alone", exc)
        call = CallTelemetry(ctx, tracer, meters, capture, oi)
        ctx.instrument = call
        return call.run(stages, upstream, ctx)

    def _provider_conventions(self) -> str | None:
        provider = self._tracer_provider or trace.get_tracer_provider()
        value = getattr(provider, CONVENTIONS_ATTR, None)
        return value if isinstance(value, str) else None

    # Outside a call started by ``run`` there is no root span: ``stage``, ``group``,
    # ``first_chunk`` and ``group_failed`` are PlainInstrument's (the stages as they are).

    def tracer(self) -> Tracer | None:
        """The tracer calls would use now, or ``None`` when no span could record."""
        return self._tracer()

    def _tracer(self) -> Tracer | None:
        provider = self._tracer_provider or trace.get_tracer_provider()
        if tracing_off(provider):
            return None
        cached = self._tracers
        if cached is None or cached[0] is not provider:
            cached = (provider, provider.get_tracer(SCOPE, _VERSION))
            self._tracers = cached
        tracer = cached[1]
        return None if isinstance(tracer, trace.NoOpTracer) else tracer

    def _call_metrics(self) -> CallMetrics | None:
        provider = self._meter_provider or otel_metrics.get_meter_provider()
        if meters_off(provider):
            return None
        cached = self._meters
        if cached is None or cached[0] is not provider:
            cached = (provider, CallMetrics(provider.get_meter(SCOPE, _VERSION)))
            self._meters = cached
        return cached[1]
