"""Which attribute conventions a call's spans carry: GenAI always, OpenInference beside it.

GenAI (the OpenTelemetry semantic conventions) is what Jaeger, Grafana and
Datadog read; OpenInference is what Phoenix and Arize read natively. Both
are on by default: the OpenInference attributes are a handful per call (the
root's model, provider, tokens, parameters; one kind per stage span), so
an OpenInference backend shows llmpipe's calls as LLM spans with their
tokens without converting anything, and GenAI backends ignore them.
``conventions="genai"`` (or ``LLMPIPE_TRACE_CONVENTIONS=genai``) keeps the
spans to GenAI alone.

The status of a span that succeeded follows the same setting: OpenInference
sets ``OK`` (so Phoenix shows "OK", not "unset"); OpenTelemetry's rule for
instrumentation libraries is to leave it unset unless configured otherwise,
which ``genai`` alone does.
"""

from __future__ import annotations

import os

__all__ = ["CONVENTIONS_ENV", "DEFAULT", "openinference_on"]

CONVENTIONS_ENV = "LLMPIPE_TRACE_CONVENTIONS"
_KNOWN = ("genai", "openinference")
DEFAULT = "genai,openinference"


def openinference_on(setting: str | None) -> bool:
    """Whether spans carry OpenInference attributes (and ``OK`` status on success).

    ``setting``: ``"genai"``, ``"openinference"`` or ``"genai,openinference"``
    (GenAI is always recorded: it also names the metrics); ``None`` reads
    ``LLMPIPE_TRACE_CONVENTIONS``, else the default, both. Anything else
    raises ``ValueError`` naming the known values.
    """
    value = setting if setting is not None else os.environ.get(CONVENTIONS_ENV) or DEFAULT
    names = {v.strip().lower() for v in value.split(",") if v.strip()}
    unknown = names - set(_KNOWN)
    if unknown or not names:
        raise ValueError(
            f"unknown tracing conventions {value!r} (conventions= or {CONVENTIONS_ENV}):"
            f" use genai, openinference, or both: {DEFAULT}"
        )
    return "openinference" in names
