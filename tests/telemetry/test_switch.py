"""How a stage's span is made current: OpenTelemetry's own context variable, or its API.

``telemetry.runs.SWITCH`` is ``(make current, restore)``. With the API's
default runtime context it must be that context's variable (so what it
sets is what ``opentelemetry.context.get_current`` returns); with any
other runtime context, the public ``attach`` / ``detach``.
"""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

from telemetry import runs


def test_the_switch_sets_what_the_api_reads_and_restores_what_was_there() -> None:
    make_current, restore = runs.SWITCH
    # the pinned API's default runtime context: the fast path is the one in use
    assert (make_current, restore) != (otel_context.attach, otel_context.detach)
    before = otel_context.get_current()
    ctx = trace.set_span_in_context(trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT))
    token = make_current(ctx)
    assert otel_context.get_current() is ctx
    inner = make_current(otel_context.set_value("k", 1, ctx))
    assert otel_context.get_value("k") == 1
    restore(inner)
    assert otel_context.get_current() is ctx
    restore(token)
    assert otel_context.get_current() is before


def test_another_runtime_context_gets_the_public_functions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Other:  # a runtime context of another kind (OTEL_PYTHON_CONTEXT)
        pass

    monkeypatch.setattr(otel_context, "_RUNTIME_CONTEXT", Other())
    assert runs._switch() == (otel_context.attach, otel_context.detach)
