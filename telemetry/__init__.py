"""Telemetry for llmpipe: a span per call and per stage, GenAI conventions, metrics.

- ``TelemetryInstrument``: the pipeline instrument (the default pipeline has
  one); OpenTelemetry API only, and no cost per chunk when no SDK is set up;
- ``setup()``: configures the SDK from the ``OTEL_*`` variables (OTLP over
  HTTP or gRPC, a console tree, or nothing); the CLI's ``--trace`` uses it.
  Applications that configure OpenTelemetry themselves need neither.
"""

from telemetry.configure import TelemetryHandle, setup
from telemetry.instrument import TelemetryInstrument

__all__ = ["TelemetryHandle", "TelemetryInstrument", "setup"]
