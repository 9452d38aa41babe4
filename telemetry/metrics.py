"""The GenAI client metrics of one call: token usage, duration, time to first chunk.

Recorded once per call, when it ends, with the conventions' attributes
(operation, provider, request and response model, server address, and
``error.type`` on failure). Bucket boundaries are the conventions' advice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as ga
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as gm

from pipeline.events import Finish

__all__ = ["CallMetrics"]

_SECONDS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKENS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ... 67,108,864


class CallMetrics:
    """The histograms, created once per meter."""

    __slots__ = ("duration", "tokens", "ttfc")

    def __init__(self, meter: Meter) -> None:
        self.duration = meter.create_histogram(
            gm.GEN_AI_CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(_SECONDS),
        )
        self.tokens = meter.create_histogram(
            gm.GEN_AI_CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(_TOKENS),
        )
        self.ttfc = meter.create_histogram(
            gm.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time to receive the first chunk of the response stream.",
            explicit_bucket_boundaries_advisory=list(_SECONDS),
        )

    def record(
        self,
        attrs: Mapping[str, Any],
        *,
        duration_s: float | None,
        ttfc_s: float | None,
        finish: Finish | None,
        error_type: str | None,
    ) -> None:
        common = dict(attrs)
        if finish is not None and finish.model:
            common[ga.GEN_AI_RESPONSE_MODEL] = finish.model
        if error_type is not None:
            common["error.type"] = error_type
        if duration_s is not None:  # a call closed or cancelled early is no complete operation
            self.duration.record(duration_s, common)
        if ttfc_s is not None:
            self.ttfc.record(ttfc_s, common)
        if finish is not None and finish.usage_source != "none":
            self.tokens.record(finish.input_tokens, {**common, ga.GEN_AI_TOKEN_TYPE: "input"})
            self.tokens.record(finish.output_tokens, {**common, ga.GEN_AI_TOKEN_TYPE: "output"})
